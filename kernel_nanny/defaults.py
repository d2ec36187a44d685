"""Every default timeout, interval and back-off of kernel-nanny, in one place, each with its reason.

Modules import their defaults from here, so a value is changed (and its
reason read) once. Times are in seconds unless the name says otherwise.

This module imports nothing: a nanny reads it before it starts its kernel,
and the nanny keeps its start-up lean.
"""

from __future__ import annotations

# -- kernels: start-up and shutdown --------------------------------------------

#: Seconds a kernel gets to become ready (``LaunchParams.startup_timeout``, ``wait_for_ready()``).
#: jupyter_client's value; a cold environment or container image can take tens of seconds.
DEFAULT_STARTUP_TIMEOUT = 60.0
#: Seconds a kernel gets to exit after a shutdown request, then again after SIGTERM
#: (``LaunchParams.shutdown_timeout``). jupyter_client's ``shutdown_wait_time``: ipykernel
#: exits well within it unless user code ignores the request.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: Seconds to wait for the rest of a dead kernel's output before reporting its death at start-up.
#: Bounded: a grandchild may hold a pipe open, an engine may be slow to close a stream.
OUTPUT_DRAIN_TIMEOUT = 1.0
#: Seconds a kernel's heartbeat echo may take (``KernelClient.heartbeat()``). The echo is answered
#: by a thread of its own, so a second is ample even while the kernel is busy.
HEARTBEAT_TIMEOUT = 1.0
#: After a kernel_info reply, how long to wait for proof that iopub is subscribed before asking
#: again (the kernel publishes status for every request); short, as ZeroMQ's subscription
#: usually lands within milliseconds.
IOPUB_CONFIRM_INTERVAL = 0.25
#: Seconds ``python -c "import ipykernel"`` may take when checking an environment: a first
#: import on a network file system or a fresh environment compiles bytecode.
IPYKERNEL_CHECK_TIMEOUT = 60.0
#: Seconds ``KernelExecution.stop()`` waits for an interrupted command before it kills the
#: kernel: the grace a shutdown request gets.
DEFAULT_STOP_TIMEOUT = DEFAULT_SHUTDOWN_TIMEOUT

# -- restarts (RestartPolicy) ----------------------------------------------------

#: Automatic restarts allowed within the window: enough to ride out a few crashes (an OOM kill
#: under a burst of load), few enough that a kernel that cannot start stops being retried.
DEFAULT_MAX_RESTARTS = 5
#: Seconds over which restarts are counted: a kernel that has been up this long has a fresh budget.
DEFAULT_RESTART_WINDOW = 60.0
#: Seconds before the first restart, doubling for each further one: quick for a one-off crash,
#: without spinning on a kernel that dies at once.
DEFAULT_RESTART_BACKOFF = 0.5
#: The back-off stops doubling here, so a restart is never further away than this.
DEFAULT_RESTART_MAX_BACKOFF = 10.0

# -- nannies ------------------------------------------------------------------------

#: Seconds between a nanny's ``heartbeat`` events. Clients take a nanny for dead after
#: ``MISSED_HEARTBEATS`` missed, so a death is noticed within seconds at negligible cost.
DEFAULT_HEARTBEAT_INTERVAL = 1.0
#: Heartbeats a nanny may miss before clients give up on it: tolerates a moment's stall
#: (a swap-in, a burst of output) without false alarms.
MISSED_HEARTBEATS = 3
#: Seconds a nanny may take to report beyond its kernel's start-up timeout (its own start, imports).
NANNY_REPORT_MARGIN = 10.0
#: Bytes of journal entries one replay reply carries at most: big enough for thousands of messages a
#: page, small enough that a reply never holds the nanny's loop (or a client's memory) for long.
REPLAY_MAX_BYTES = 1 << 20
#: Seconds a replay that found nothing new may wait for the next entry (``wait``; the nanny caps it
#: here): a follower's request stays open across a quiet kernel instead of being repeated, and a
#: follower still hears from the nanny at least this often.
REPLAY_MAX_WAIT = 30.0
#: Seconds a nanny whose starter gave up gets to abandon its launch (cancel a queued job, remove
#: a container) and exit before it is killed: a Slurm job's cancellation is confirmed within it.
NANNY_ABANDON_TIMEOUT = 90.0
#: Seconds a nanny gets to answer a quick request (``info``, ``interrupt``, ``signal``...).
#: A live nanny answers in milliseconds; this only bounds waiting on a hung one.
NANNY_REQUEST_TIMEOUT = 10.0
#: Seconds for requests that wait on the kernel: a restart waits for the new kernel to be ready
#: (``DEFAULT_STARTUP_TIMEOUT``) after the shutdown ladder, so twice the start-up timeout.
NANNY_SLOW_REQUEST_TIMEOUT = 120.0
#: Seconds a nanny gets to answer when we only check that it is there (daemon adoption,
#: ``kernel-nanny ps``): a hung nanny must not stall a daemon's start or a listing.
NANNY_PROBE_TIMEOUT = 2.0
#: Seconds a nanny gets to greet the provisioner's subscription, and to exit once told to.
PROVISIONER_NANNY_TIMEOUT = 10.0
#: Without a pidfd (not Linux), how often a nanny's exit is checked once it said it is exiting:
#: the exit is imminent, so checking often costs little.
NANNY_EXIT_CHECK_INTERVAL = 0.05
#: The longest a journal entry waits in memory before it is written to its segment file: what a
#: crash of the nanny can lose from the files. Short enough for a post-mortem, long enough that a
#: burst of output costs one write per 64 KiB rather than one per message.
JOURNAL_FLUSH_INTERVAL = 0.05

# -- the journal (JournalLimits) ---------------------------------------------------------

#: Bytes of a kernel's recent output its nanny keeps in memory (``[journal] memory``): replays of
#: the last minutes of a busy cell come from RAM, and a full ring keeps a nanny within 45 MiB RSS.
DEFAULT_JOURNAL_MEMORY_BYTES = 8 * 1024 * 1024
#: Bytes of output kept on disk (``[journal] disk``; 0: memory only): hours of printed progress, or
#: a few dozen plots, for a client back from a night away, and little next to a kernel's own footprint.
DEFAULT_JOURNAL_DISK_BYTES = 64 * 1024 * 1024
#: The smallest cap accepted (besides a disk cap of 0): one write's worth of entries. A smaller
#: value is likelier a unit forgotten (``memory = 8`` for 8 MiB) than a wish.
JOURNAL_MIN_BYTES = 64 * 1024

# -- sockets --------------------------------------------------------------------------

#: Milliseconds a client's closed socket may keep trying to deliver what was sent: enough for a
#: last request on a local link, short enough that closing never hangs on a dead peer.
CLIENT_LINGER_MS = 500
#: Milliseconds a nanny's or daemon's closed socket keeps delivering: their last replies and
#: events (``nanny_exiting``) matter more, and they close once per process lifetime.
SERVER_LINGER_MS = 1000
#: Milliseconds before a client socket reconnects to a peer that is (re)starting, doubling up to
#: ``CLIENT_RECONNECT_IVL_MAX_MS``: zmq's fixed 100 ms would add up to 100 ms to every start.
CLIENT_RECONNECT_IVL_MS = 10
#: The reconnection back-off stops here: a restarted kernel must not wait out a long back-off.
CLIENT_RECONNECT_IVL_MAX_MS = 100
#: Seconds a peer must keep dropping our handshakes, with no success between, before a client
#: calls it a security mismatch: a wrong server key and an overloaded server both look like a
#: dropped connection (``HANDSHAKE_FAILED_NO_DETAIL``), but only the first persists.
HANDSHAKE_DROPS_CONCLUSIVE_S = 1.0
#: Bytes a message frame sent to a socket we bind (a nanny's control and events sockets, the
#: daemon's) may have (``ZMQ_MAXMSGSIZE``); a peer sending a bigger one is disconnected before it
#: is buffered. Kernel output and code never pass through these sockets: they carry requests and
#: subscriptions of a few hundred bytes. The biggest legitimate one is a daemon launch with its
#: ``env``, which must fit a process's argv and environment (Linux's ``ARG_MAX``, 2 MiB by
#: default); 4 MiB holds that with room for JSON escaping.
MAX_REQUEST_BYTES = 4 << 20
#: Messages a client's subscription (a kernel's iopub, a nanny's events) holds that the client has
#: not read yet (``ZMQ_RCVHWM``). Past it ZeroMQ stops reading, the kernel's own send queue fills
#: and the kernel drops output, so it must outlast a burst the client falls behind on: with both
#: CPUs busy, a client read 100,000 flushed prints about a quarter slower than ipykernel sent them
#: and lost up to a quarter of them at zmq's default of 1,000. Memory: a queued message takes at
#: most its size or 8 KiB (libzmq's receive buffer, which a small message read on its own pins),
#: so a client 100,000 printed lines behind holds at most about 800 MiB, and only while it is.
SUB_RCVHWM = 100_000
#: Messages the ipykernel kernels kernel-nanny starts queue per iopub subscriber before dropping
#: (zmq's default: 1,000; see :mod:`kernel_nanny.ipykernel_launcher`). A tight print loop on a
#: busy machine outruns zmq's I/O thread by thousands of messages; a subscriber that stops reading
#: costs the kernel at most this many messages of memory (about 30 MB of typical prints).
KERNEL_IOPUB_SNDHWM = 50_000

# -- the daemon -------------------------------------------------------------------------

#: Seconds a daemon client waits for a reply to quick requests.
DEFAULT_DAEMON_TIMEOUT = 10.0
#: Seconds a daemon client waits for a launch or a shutdown: the kernel must become ready
#: (``DEFAULT_STARTUP_TIMEOUT``) or climb the shutdown ladder, so twice the start-up timeout.
DAEMON_LAUNCH_TIMEOUT = 120.0
#: Seconds a kernel listing waits for a configured daemon: ``find_kernels`` is synchronous and
#: runs inside ``kernel-nanny list`` and Jupyter's kernel listing, which must not stall.
DAEMON_LIST_TIMEOUT = 3.0
#: Culling checks at a tenth of the shortest cull timeout, but no more often than this...
CULL_CHECK_MIN_INTERVAL = 1.0
#: ... and no less often than this, so a changed activity is seen within a minute.
CULL_CHECK_MAX_INTERVAL = 60.0
#: Seconds between the daemon's checks that its runtime directory, discovery file and socket are
#: still there (a tmp cleaner or logind may delete the directory; the stdlib has no file-system
#: event for it). A check is three stat() calls; clients cannot find the daemon for at most this long.
RUNTIME_DIR_CHECK_INTERVAL = 1.0
#: Milliseconds a peer of the daemon's tcp endpoint gets to complete the CurveZMQ handshake
#: (``ZMQ_HANDSHAKE_IVL``; zmq's default is 30 s). A client's handshake takes one round trip and a
#: key check; an idle stranger holding a connection (a file descriptor) is dropped after this.
TCP_HANDSHAKE_TIMEOUT_MS = 10_000
#: Connections the daemon's tcp endpoint keeps open at once (and never more than half its
#: open-file limit, so local clients and kernels always have file descriptors left): far more
#: than the remote clients a daemon serves, few enough to bound the memory strangers can hold.
MAX_TCP_CONNECTIONS = 1000
#: Connections the kernel queues for the daemon's tcp endpoint before zmq accepts them
#: (``ZMQ_BACKLOG``; zmq's default is 100). zmq accepts faster than the daemon can cut what is
#: over its limit, so a flood briefly overshoots by up to this many file descriptors: too many,
#: and the process runs out of them, which libzmq's ipc listener does not survive (it asserts on
#: ``EMFILE``). A client that finds the queue full retries within a second.
TCP_ACCEPT_BACKLOG = 16
#: Seconds over which a request server logs at most a burst of bad-input warnings: a client
#: sending garbage must not flood the journal.
BAD_INPUT_LOG_INTERVAL = 10.0

# -- the gateway (Jupyter Kernel Gateway API) ---------------------------------------------

#: The address the gateway listens on when ``[HOST:]PORT`` names no host: loopback only.
GATEWAY_HOST = "127.0.0.1"
#: Replies (``execute_reply``...) a gateway connection holds for the next client after its own went
#: away; beyond it the oldest are dropped. Its output is the journal's to keep, not counted here.
GATEWAY_DETACHED_REPLIES = 1000
#: Seconds a connection a client left is kept for its return (a jupyter_server restarted, a page whose
#: network came back: JupyterLab retries for about two minutes, then on its next poll of the server).
GATEWAY_DETACHED_TIMEOUT = 600.0
#: Connections clients left kept per kernel: each page load is a new client, and a page that was
#: reloaded never comes back for the old one; the oldest owed nothing go first.
GATEWAY_DETACHED_PER_KERNEL = 4
#: Bytes one WebSocket message to the gateway may have (a cell's code, a widget's comm message with a
#: file it uploads); a bigger one closes the connection. jupyter_server's own limit (tornado's default).
GATEWAY_MAX_MESSAGE_BYTES = 10 << 20
#: Seconds an HTTP connection may wait for its next request: clients that open connections and send
#: nothing give the daemon's file descriptors back (WebSockets, once open, are not affected).
GATEWAY_IDLE_TIMEOUT = 60.0

# -- providers ------------------------------------------------------------------------------

#: Seconds an SSH connection may take to be established (per host: ``connect_timeout``).
SSH_CONNECT_TIMEOUT = 10.0
#: Seconds before the first SSH reconnection attempt, doubling up to ``SSH_RECONNECT_MAX_DELAY``:
#: a blip is bridged at once...
SSH_RECONNECT_FIRST_DELAY = 0.2
#: ... and a longer outage is not hammered.
SSH_RECONNECT_MAX_DELAY = 5.0
#: Seconds between SSH keep-alives: with ``SSH_KEEPALIVE_COUNT_MAX`` unanswered ones, a silently
#: dead connection (no RST) is noticed within about 15 s.
SSH_KEEPALIVE_INTERVAL = 5.0
#: Unanswered keep-alives before the connection is taken for dead (one lost packet is not enough).
SSH_KEEPALIVE_COUNT_MAX = 3
#: Seconds a request to a remote kernel waits for a dropped SSH connection to come back:
#: several reconnection attempts, about two keep-alive detection periods.
SSH_RECONNECT_WAIT = 30.0
#: Seconds a Docker Engine request may take (a stop adds its own grace period): pulls are
#: not made through it, but a busy engine can take seconds to create or inspect a container.
DOCKER_ENGINE_TIMEOUT = 30

# -- Slurm ------------------------------------------------------------------------------------

#: Seconds a Slurm command (sbatch, squeue, scancel, scontrol, sacct) may take: its own
#: MessageTimeout is 10 s by default, and a busy slurmctld answers within it.
SLURM_COMMAND_TIMEOUT = 30.0
#: Seconds between queue checks while a job is pending, doubling up to ``SLURM_QUEUE_MAX_INTERVAL``.
#: Slurm offers no event stream to wait on: a job is seen to start within a second on an idle
#: cluster, and a long queue wait is not polled more than every ``SLURM_QUEUE_MAX_INTERVAL``.
SLURM_QUEUE_FIRST_INTERVAL = 0.25
SLURM_QUEUE_MAX_INTERVAL = 10.0
#: Seconds to wait after scancel for the job to leave the queue (KillWait, 30 s by default on
#: clusters, plus the epilog); the wait ends as soon as squeue says the job ended.
SLURM_CANCEL_WAIT = 60.0
#: Seconds slurmctld may stay unreachable while a job runs before a request gives up waiting
#: (the kernel is kept: an unreachable controller is not a dead job).
SLURM_UNREACHABLE_RETRY_MAX = 30.0
#: Seconds a job gets to report its nanny once it runs (module loads, a cold Python on a
#: network file system), on top of the kernel's start-up timeout.
SLURM_REPORT_MARGIN = 60.0
#: The longest a launch through the daemon may take past its start-up timeout, whatever its provider
#: (the daemon enforces each launch's own limit; a client waits this long before giving up on it).
LAUNCH_REPORT_MARGIN_MAX = NANNY_REPORT_MARGIN + SLURM_REPORT_MARGIN
#: Seconds a kernel killed by a signal inside its job gets for its nanny to say it is exiting too (the
#: job is ending: Slurm signals all its processes at once) before the death counts as the kernel's own.
JOB_END_GRACE = 1.0
#: Seconds an in-job nanny waits for the launcher to acknowledge its callback.
CALLBACK_ACK_TIMEOUT = 10.0
#: Seconds a run of ``kernel-nanny exec`` in a kernel behind a nanny goes on before ``exec`` says how to
#: re-join it should ``exec`` end: a long run is worth the line on stderr, a quick one is not.
EXEC_REJOIN_HINT_AFTER = 2.0

# -- the kernel pool --------------------------------------------------------------------------

#: Pooled kernels the daemon keeps at most, all pools together (``[pool] max_kernels``): each is a
#: running kernel and nanny (about 60 MiB for ipykernel) whether or not anyone takes it.
POOL_MAX_KERNELS = 8
#: Seconds before a pool tries again after a kernel failed to start, doubling up to ``POOL_RETRY_MAX``:
#: a broken kernelspec must not be restarted in a tight loop.
POOL_RETRY_FIRST = 1.0
POOL_RETRY_MAX = 300.0
#: Seconds a launch waits for a pooled kernel to take the launch's directory and environment.
POOL_BIND_TIMEOUT = 10.0
#: Seconds a ``pools`` request may wait for the pools to fill (a kernel's start-up takes seconds, not minutes).
MAX_POOL_WAIT = 300.0

# -- the nanny fork server (kernel_nanny.nanny.forkserver) -------------------------------------

#: Seconds ``ForkServer.start()`` waits for a new fork server to listen: its imports take about 0.1 s
#: from a warm page cache, seconds from a cold network file system.
FORKSERVER_START_TIMEOUT = 30.0
#: Seconds a starter waits for the fork server's answer before it spawns the nanny itself: a fork takes
#: milliseconds, so a server slower than this is stopped (SIGSTOP) or stuck and must not hold a start up.
FORKSERVER_REPLY_TIMEOUT = 5.0
#: Seconds a client of the fork server gets to send its whole request (sent at once, in one write)
#: before it is dropped: a connection that sends nothing must not hold a descriptor for ever.
FORKSERVER_REQUEST_TIMEOUT = 10.0
#: Seconds a fork server gets to exit once its lifeline closed (it exits at once: no nanny needs it)
#: before it is killed.
FORKSERVER_STOP_TIMEOUT = 5.0

# -- kernels from Python environments (kernel_nanny.discovery.environments) --------------------

#: conda's list of the environments it made or saw, one prefix a line (``conda create`` appends to it).
CONDA_ENVIRONMENTS_FILES = ("~/.conda/environments.txt",)
#: Directories whose sub-directories are conda environments, after those of ``CONDA_ENVS_PATH`` and
#: the ``envs_dirs`` of the ``.condarc`` files: conda's own defaults for a user install.
CONDA_ENVS_DIRS = ("~/.conda/envs",)
#: The ``.condarc`` files conda reads, in its order (``condarc.d/*.yml`` of each directory too); each
#: may add ``envs_dirs``. ``$CONDA_ROOT``, ``$XDG_CONFIG_HOME`` and ``$CONDARC`` are expanded.
CONDARC_FILES = (
    "/etc/conda/.condarc",
    "/etc/conda/condarc",
    "/etc/conda/condarc.d/",
    "/var/lib/conda/.condarc",
    "/var/lib/conda/condarc",
    "/var/lib/conda/condarc.d/",
    "$CONDA_ROOT/.condarc",
    "$CONDA_ROOT/condarc",
    "$CONDA_ROOT/condarc.d/",
    "$XDG_CONFIG_HOME/conda/.condarc",
    "$XDG_CONFIG_HOME/conda/condarc",
    "$XDG_CONFIG_HOME/conda/condarc.d/",
    "~/.config/conda/.condarc",
    "~/.config/conda/condarc",
    "~/.config/conda/condarc.d/",
    "~/.conda/.condarc",
    "~/.conda/condarc",
    "~/.conda/condarc.d/",
    "~/.condarc",
    "$CONDARC",
)
#: Directories whose sub-directories are venvs (``pyvenv.cfg``): virtualenvwrapper's, and the usual
#: hand-made places. ``$WORKON_HOME`` is virtualenvwrapper's setting; unset, it is skipped.
VENV_DIRECTORIES = ("~/.virtualenvs", "~/.venvs", "$WORKON_HOME")
#: Directories whose sub-directories are projects (a uv project's ``.venv``, a pixi project's
#: ``.pixi/envs/*``); a directory that is itself a project counts too. Only one level is read:
#: a listing must not walk a home directory.
PROJECT_ROOTS = ("~/projects", "~/src", "~/code")
#: The shell that sources conda's ``etc/conda/activate.d/*.sh`` scripts, then replaces itself by the kernel (``exec``).
ACTIVATION_SHELL = "/bin/sh"
