"""A real single-node Slurm cluster for the tests: munged, slurmctld and slurmd on this machine.

Debian's slurm-wlm (installed by .ci/install-test-deps.sh), configured as in the shared recipe:
the node is this host (``hostname -s``), no accounting (``sacct`` says so), MinJobAge 30 s (an
ended job's state stays readable that long), KillWait 5 s; and, for quicker tests, MessageTimeout 5 s
and backfill every second. The daemons run in the foreground as children of the test session,
with their own state directory, ports and munge socket, and stop with it. :func:`start_slurm_cluster` is also what bench/bench_slurm.py uses.

A second cluster, ``slurm_accounting``, has job accounting as many real clusters do: MariaDB in a private
data directory (loopback port), slurmdbd in the foreground, associations enforced, and MinJobAge 2 s so an
ended job soon leaves slurmctld and only ``sacct`` knows it. It is separate, so the other tests keep
MinJobAge 30 and do not pay for MariaDB and slurmdbd; its job ids start at 100000, so its kernels' state files
(runtime directory, by job id) never meet the first cluster's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

#: The daemons and commands a cluster needs.
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
#: And the accounting cluster's.
ACCOUNTING_BINARIES = ("mariadb-install-db", "mariadbd", "mariadb", "slurmdbd", "sacctmgr", "sacct")
#: The account every job of the accounting cluster may use (root's default is Slurm's own "root").
ACCOUNT = "kntest"
#: A partition on the same node whose jobs preempt those of the default one ("debug").
PREEMPTING_PARTITION = "urgent"
_INSTALL = "install them once, as root: bash .ci/install-test-deps.sh"


#: slurm.conf without accounting: an ended job's state stays readable for 30 s.
_NO_ACCOUNTING = ("AccountingStorageType=accounting_storage/none", "MinJobAge=30")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlurmCluster:
    """A running cluster: ``conf``, ``env`` for subprocesses, and the commands tests need."""

    def __init__(self, directory: Path, *, accounting: bool = False) -> None:
        self.dir = directory
        self.accounting = accounting
        self.name = "kntestacct" if accounting else "kntest"
        self.conf = directory / "slurm.conf"
        self.munge_socket = directory / "munge-socket" / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.cpus = os.cpu_count() or 1
        self._controller: subprocess.Popen[bytes] | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

    # -- running it -------------------------------------------------------------------

    def start(self) -> None:
        needed = BINARIES + ACCOUNTING_BINARIES if self.accounting else BINARIES
        missing = [
            name for name in needed if shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None
        ]
        if missing:
            pytest.fail(f"Slurm is not installed here (missing: {', '.join(missing)}): {_INSTALL}", pytrace=False)
        for sub in ("state", "spool", "log", "munge", "munge-socket"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # munged (user munge) must reach its directory below
        for sub, mode in (("munge", 0o700), ("munge-socket", 0o755)):  # as munged insists
            shutil.chown(self.dir / sub, "munge", "munge")
            (self.dir / sub).chmod(mode)
        node = socket.gethostname().split(".")[0]
        ctld_port, slurmd_port = _free_port(), _free_port()
        accounting = self._accounting_settings(node) if self.accounting else _NO_ACCOUNTING
        self.conf.write_text(
            "\n".join(
                [
                    f"ClusterName={self.name}",
                    f"SlurmctldHost={node}(127.0.0.1)",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={slurmd_port}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={self.dir / 'state'}",
                    f"SlurmdSpoolDir={self.dir / 'spool'}",
                    f"SlurmctldPidFile={self.dir / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.dir / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.dir / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.dir / 'log' / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "MpiDefault=none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "ReturnToService=2",
                    "JobAcctGatherType=jobacct_gather/none",
                    *accounting,
                    "KillWait=5",
                    # A command gives up on a stopped slurmctld after about MessageTimeout - 1 s (9 s by default).
                    "MessageTimeout=5",
                    # Backfill every second (not 30): a job pending behind a time-limited one gets its
                    # expected start time within seconds.
                    "SchedulerParameters=bf_interval=1",
                    f"NodeName={node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=4000 State=UNKNOWN",
                    f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
                    # Preemption, as clusters run it: a job in the higher tier requeues (or, where it may not
                    # be requeued, cancels) jobs in "debug" that hold the resources it needs.
                    "PreemptType=preempt/partition_prio",
                    "PreemptMode=REQUEUE",
                    f"PartitionName={PREEMPTING_PARTITION} Nodes={node} MaxTime=INFINITE PriorityTier=2 State=UP",
                    "",
                ]
            )
        )
        self._spawn(
            [
                "runuser",
                "-u",
                "munge",
                "--",
                "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--pid-file={self.dir / 'munge' / 'munged.pid'}",
                f"--seed-file={self.dir / 'munge' / 'munged.seed'}",
                f"--log-file={self.dir / 'munge' / 'munged.log'}",
            ],
            "munged",
        )
        self._until(lambda: self.munge_socket.exists(), 10, "munged to open its socket")
        if self.accounting:
            self._start_accounting()
        self.start_controller()
        self._spawn(["slurmd", "-D", "-f", str(self.conf)], "slurmd")
        self._until(self._node_idle, 30, "the node to be idle")

    def _accounting_settings(self, node: str) -> list[str]:
        """slurm.conf's accounting lines, and slurmdbd.conf beside it (where slurmdbd looks, by SLURM_CONF)."""
        self._dbd_port, self._db_port = _free_port(), _free_port()
        self._db_password = secrets.token_hex(16)
        dbd_conf = self.dir / "slurmdbd.conf"
        dbd_conf.touch(mode=0o600)  # slurmdbd refuses a readable one: it holds the database password
        dbd_conf.write_text(
            "\n".join(
                [
                    f"DbdHost={node}",
                    "DbdAddr=127.0.0.1",
                    f"DbdPort={self._dbd_port}",
                    "SlurmUser=root",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"PidFile={self.dir / 'slurmdbd.pid'}",
                    f"LogFile={self.dir / 'log' / 'slurmdbd.log'}",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=127.0.0.1",
                    f"StoragePort={self._db_port}",
                    "StorageUser=slurm",
                    f"StoragePass={self._db_password}",
                    "StorageLoc=slurm_acct_db",
                    "",
                ]
            )
        )
        return [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={self._dbd_port}",
            # The munge socket for talking to slurmdbd (slurmctld, sacctmgr): without it, the system's default
            # munged (/run/munge), which a fresh machine does not run.
            f"AccountingStoragePass={self.munge_socket}",
            # A job needs an association (user, account, cluster): an unknown account is refused at submission.
            "AccountingStorageEnforce=associations",
            # An ended job leaves slurmctld within seconds (the least Slurm allows is 2): then only sacct knows it.
            "MinJobAge=2",
            "FirstJobId=100000",
        ]

    def _start_accounting(self) -> None:
        """MariaDB in a private data directory, slurmdbd on it, and this cluster registered with an account."""
        data = self.dir / "mariadb"
        socket_path = self.dir / "mariadb.sock"
        install = subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={data}", "--skip-test-db"],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            raise RuntimeError(f"Slurm test cluster: mariadb-install-db failed: {install.stdout}{install.stderr}")
        self._spawn(
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={data}",
                f"--socket={socket_path}",
                f"--pid-file={self.dir / 'mariadb.pid'}",
                "--bind-address=127.0.0.1",
                f"--port={self._db_port}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
            ],
            "mariadbd",
        )
        sql = ["mariadb", "--no-defaults", f"--socket={socket_path}", "--user=root", "--execute"]
        self._until(lambda: self.try_run(*sql, "SELECT 1") is not None, 30, "answer from MariaDB")
        self.run(
            *sql,
            "CREATE DATABASE slurm_acct_db;"
            f" CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{self._db_password}';"
            " GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';",
        )
        self._spawn(["slurmdbd", "-D"], "slurmdbd")
        # Its first start creates the database's tables: seconds when idle, longer under a loaded CI machine.
        self._until(self._dbd_answers, 120, "answer from slurmdbd (sacctmgr list cluster)")
        # Adding the cluster adds Slurm's "root" account with user root; ours is for jobs that name one.
        self.run("sacctmgr", "-i", "add", "cluster", self.name)
        self.run("sacctmgr", "-i", "add", "account", ACCOUNT, f"Cluster={self.name}")
        self.run("sacctmgr", "-i", "add", "user", "root", f"Account={ACCOUNT}", f"Cluster={self.name}")

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        with open(self.dir / "log" / f"{name}.out", "ab") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=self.env)
        self._processes.append(process)
        return process

    def _until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """A bounded retry: Slurm and munge offer nothing to wait on but their answers."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"{p.name}: {p.read_text()[-800:]}" for p in (self.dir / "log").glob("*"))
                raise RuntimeError(f"Slurm test cluster: no {what} within {timeout:g} s\n{logs}")
            time.sleep(0.1)

    def _node_idle(self) -> bool:
        return (self.try_run("sinfo", "-h", "-o", "%T") or "").strip() == "idle"

    def stop_controller(self) -> None:
        """Stop slurmctld (the commands then fail as with a controller that is down)."""
        if self._controller is not None:
            self._controller.terminate()
            self._controller.wait(30)
            self._processes.remove(self._controller)
            self._controller = None

    def start_controller(self) -> None:
        """Start slurmctld (if stopped) and return once it answers; its state (jobs, node) survives a restart."""
        if self._controller is not None:
            return
        self._controller = self._spawn(["slurmctld", "-D", "-f", str(self.conf)], "slurmctld")
        self._until(lambda: self.try_run("scontrol", "ping") is not None, 30, "answer from slurmctld")

    def stop(self) -> None:
        if self._controller is not None:
            # Jobs end while slurmd still runs, so no slurmstepd (and no job's process) outlives the cluster.
            with contextlib.suppress(Exception):
                self.run("scancel", "--user", "root")
                self._until(lambda: not self.jobs(), 30, "end of the jobs left")
        for process in reversed(self._processes):
            process.terminate()
        for process in self._processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        self._processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- using it ---------------------------------------------------------------------------

    def _command(self, argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        # In the cluster's directory: a job submitted without --output writes its slurm-<id>.out there.
        return subprocess.run(list(argv), env=self.env, cwd=self.dir, capture_output=True, text=True, timeout=60)

    def _dbd_answers(self) -> bool:
        try:
            result = subprocess.run(
                ["sacctmgr", "--noheader", "list", "cluster"],
                env=self.env,
                cwd=self.dir,
                capture_output=True,
                text=True,
                timeout=15,  # one slow answer is no reason to give up: try again
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def try_run(self, *argv: str) -> str | None:
        result = self._command(argv)
        return result.stdout if result.returncode == 0 else None

    def run(self, *argv: str) -> str:
        """Run a Slurm command against this cluster; its stdout (a failure raises with its stderr)."""
        result = self._command(argv)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def queue(self) -> list[dict[str, str]]:
        """The jobs in the queue (any state slurmctld still keeps): id, state, reason, name."""
        out = self.run("squeue", "--noheader", "--states=all", "--format", "%i|%T|%r|%j")
        fields = ("id", "state", "reason", "name")  # the name last: it may hold a "|"
        return [dict(zip(fields, line.split("|", 3), strict=True)) for line in out.splitlines() if line]

    def jobs(self) -> list[str]:
        """Ids of the jobs still queued or running (ended ones excluded)."""
        return list(self.live_jobs())

    def live_jobs(self) -> dict[str, str]:
        """The state of each job that has not ended, by id (squeue's default states: pending, running,
        completing, suspended, ...)."""
        out = self.run("squeue", "--noheader", "--format", "%i|%T")
        return {job_id: state for job_id, state in (line.split("|") for line in out.splitlines() if line)}

    def status(self, job_id: str) -> str:
        """The state of job ``job_id`` (``""`` once slurmctld forgot it)."""
        return next((job["state"] for job in self.queue() if job["id"] == job_id), "")

    def wait_for_job(self, predicate: Callable[[dict[str, str]], bool], timeout: float) -> str:
        """The id of the first queued job ``predicate`` accepts, once there is one."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [job["id"] for job in self.queue() if predicate(job)]
            return bool(found)

        self._until(seen, timeout, "matching job")
        return found[0]

    async def wait_gone(self, job_id: str, timeout: float) -> None:
        """Return once job ``job_id`` has left the queue (ended or forgotten)."""
        await asyncio.to_thread(self._until, lambda: job_id not in self.jobs(), timeout, f"end of job {job_id}")

    async def wait_forgotten(self, job_id: str, timeout: float) -> None:
        """Return once slurmctld has purged ended job ``job_id`` (MinJobAge passed; its next purge runs)."""
        await asyncio.to_thread(self._until, lambda: not self.status(job_id), timeout, f"purge of job {job_id}")

    @contextlib.contextmanager
    def hold_all_cpus_sync(self) -> Iterator[str]:
        """A running job that holds every CPU of the node (so the next one pends), cancelled afterwards."""
        # A time limit lets Slurm estimate when the next job starts (and ends a blocker nobody cancelled).
        limits = [f"--cpus-per-task={self.cpus}", "--time=10", "--output=/dev/null"]
        job_id = self.run("sbatch", "--parsable", *limits, "--job-name=blocker", "--wrap", "sleep 600").strip()
        try:
            self._until(lambda: self.status(job_id) == "RUNNING", 30, f"blocker job {job_id} to run")
            yield job_id
        finally:
            self.run("scancel", job_id)
            self._until(lambda: job_id not in self.jobs(), 60, f"end of blocker job {job_id}")

    def preempt_all(self) -> str:
        """Submit a job to the preempting partition that needs every CPU: it preempts what runs in "debug"."""
        limits = [f"--partition={PREEMPTING_PARTITION}", f"--cpus-per-task={self.cpus}", "--output=/dev/null"]
        return self.run("sbatch", "--parsable", *limits, "--job-name=preemptor", "--wrap", "sleep 600").strip()

    @contextlib.asynccontextmanager
    async def hold_all_cpus(self) -> AsyncIterator[str]:
        manager = self.hold_all_cpus_sync()
        job_id = await asyncio.to_thread(manager.__enter__)
        try:
            yield job_id
        finally:
            await asyncio.to_thread(manager.__exit__, None, None, None)


def start_slurm_cluster(*, accounting: bool = False) -> SlurmCluster:
    """Start a cluster (root only) and point this process's Slurm commands at it (``SLURM_CONF``)."""
    if os.geteuid() != 0:
        pytest.fail(f"the Slurm test cluster runs as root: {_INSTALL} and run the tests as root", pytrace=False)
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix="kn-slurm-")), accounting=accounting)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    os.environ["SLURM_CONF"] = str(cluster.conf)
    return cluster


def _session_cluster(accounting: bool) -> Iterator[SlurmCluster]:
    previous = os.environ.get("SLURM_CONF")
    cluster = start_slurm_cluster(accounting=accounting)
    if accounting:  # only the tests that ask for it (fixture slurm_accounting) point SLURM_CONF at it
        _restore_slurm_conf(previous)
    try:
        yield cluster
    finally:
        cluster.stop()
        _restore_slurm_conf(previous)


def _restore_slurm_conf(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous


def _used_by_a_test(cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """``SLURM_CONF`` points at ``cluster`` during the test; after it the queue must be empty."""
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
        cluster.start_controller()  # a test that stopped it may have failed before starting it again
        with contextlib.suppress(RuntimeError):  # a job being cancelled takes up to KillWait to leave
            cluster._until(lambda: not cluster.jobs(), 30, "empty queue")
        if left := cluster.live_jobs():
            cluster.run("scancel", *left)  # so that the next test starts with an empty queue
            cluster._until(lambda: not cluster.jobs(), 60, "end of the jobs left behind")
            pytest.fail(f"the test left Slurm jobs behind (now cancelled): {left}", pytrace=False)
    finally:
        _restore_slurm_conf(previous)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    yield from _session_cluster(accounting=False)


@pytest.fixture(scope="session")
def slurm_accounting_cluster() -> Iterator[SlurmCluster]:
    yield from _session_cluster(accounting=True)


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The cluster, checked empty after the test: a job left behind fails the test (and is cancelled)."""
    yield from _used_by_a_test(slurm_cluster)


@pytest.fixture
def slurm_accounting(slurm_accounting_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The cluster with job accounting (slurmdbd on MariaDB, MinJobAge 2 s), checked empty after the test."""
    yield from _used_by_a_test(slurm_accounting_cluster)
