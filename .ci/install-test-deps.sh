#!/usr/bin/env bash
# Install every real component the test suite needs on a fresh Debian 12 machine (root; only Debian's
# apt and PyPI reachable). Nothing is started here: each test fixture starts its own server.
#
#   tests/systemd/    systemd-analyze (systemd), rootful podman with runc, mmdebstrap (+gpg) to build
#                     the systemd image
#   tests/providers/  OpenSSH's sshd, iproute2 (network namespaces, ss), procps (pkill), python3-venv
#                     (a remote user's Python); Debian's Docker Engine (docker.io), podman's Docker API
#                     with catatonit (its init), mmdebstrap for the ipykernel image; Debian's Slurm
#                     (slurmctld, slurmd, slurm-client) and munge: the session's own single-node cluster;
#                     slurmdbd and Debian's MariaDB (mariadb-server) for a second one with job accounting
#   tests/daemon/     Debian's chromium: the JupyterLab tests drive it with Playwright (which cannot download a
#                     browser on a machine that reaches only PyPI and apt)
#   README command    python3-pip (Debian's python3 has no pip; .ci/run lets it install, PEP 668)
#
# Idempotent and quick when everything is already there: safe to run on every CI run.
# With --check it installs nothing: it lists what is missing (exit 1) or says all is there (exit 0).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Without recommends (buildah, slirp4netns, ... are not needed); mmdebstrap with them (gpg for keyrings).
plain=(systemd podman runc catatonit docker.io openssh-server iproute2 procps python3-venv python3-pip
       slurmctld slurmd slurm-client munge slurmdbd mariadb-server chromium)
with_recommends=(mmdebstrap gpg)
installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
missing_plain=() missing_rec=()
for pkg in "${plain[@]}"; do installed "$pkg" || missing_plain+=("$pkg"); done
for pkg in "${with_recommends[@]}"; do installed "$pkg" || missing_rec+=("$pkg"); done
if [[ ${1:-} == --check ]]; then
    if ((${#missing_plain[@]} + ${#missing_rec[@]})); then
        echo "missing Debian packages: ${missing_plain[*]} ${missing_rec[*]}" >&2
        exit 1
    fi
    exit 0
fi
if ((${#missing_plain[@]} + ${#missing_rec[@]})); then
    echo "installing: ${missing_plain[*]} ${missing_rec[*]}"
    apt-get update -q >/dev/null
    if ((${#missing_plain[@]})); then
        # docker.io's, openssh-server's, munge's, slurm's and mariadb's postinst cannot start their daemons here (no systemd):
        # harmless. munge's writes the key /etc/munge/munge.key that the tests' own munged uses.
        apt-get install -y -q --no-install-recommends "${missing_plain[@]}" >/dev/null
    fi
    if ((${#missing_rec[@]})); then
        apt-get install -y -q "${missing_rec[@]}" >/dev/null
    fi
fi

# podman on this machine kind (as in podman.sh of the shared recipes): its rootful default ulimits
# exceed the hard RLIMIT_NOFILE we are given, and crun refuses the hybrid cgroup layout, so runc.
# A drop-in (read after /etc/containers/containers.conf, which is left alone), written only when
# different, so a rerun changes nothing.
conf=/etc/containers/containers.conf.d/50-kernel-nanny-tests.conf
want=$(cat <<'CONF'
# Written by kernel-nanny's .ci/install-test-deps.sh
[containers]
# No CAP_SYS_RESOURCE here (hard RLIMIT_NOFILE 20000) and conmon caps NPROC at 32768, so podman's
# rootful defaults (1048576/4194304) fail with: error setting rlimit type 7: operation not permitted
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[engine]
# crun refuses this hybrid cgroup layout ("cgroups in hybrid mode not supported"); runc works.
runtime = "runc"
CONF
)
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
    mkdir -p "$(dirname "$conf")"
    printf '%s\n' "$want" >"$conf"
fi

# Check the pieces actually work, so a broken install fails here with a clear message.
systemd-analyze --version >/dev/null
podman info >/dev/null
[[ "$(podman info --format '{{.Host.OCIRuntime.Name}}')" == runc ]] || { echo "podman does not use runc (see $conf)" >&2; exit 1; }
test -x /usr/sbin/sshd
command -v dockerd ip ss pkill mmdebstrap >/dev/null
command -v sbatch squeue scancel scontrol sacct sinfo slurmctld slurmd munged munge >/dev/null
command -v slurmdbd sacctmgr mariadbd mariadb-install-db mariadb >/dev/null
test -r /etc/munge/munge.key
/usr/bin/python3 -c 'import venv, ensurepip'
/usr/bin/python3 -m pip --version >/dev/null
echo "test dependencies ready: $(systemd-analyze --version | head -1), podman $(podman --version | awk '{print $3}'), $(dockerd --version), $(ssh -V 2>&1), $(slurmctld -V), $(mariadbd --version | awk '{print $3}'), mmdebstrap"
