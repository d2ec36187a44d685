#!/usr/bin/env bash
# Install what tests/systemd/ needs on a fresh Debian 12 machine (root; only Debian's apt and PyPI
# reachable): systemd-analyze (package systemd) for unit verification, and rootful podman (with runc)
# plus mmdebstrap for the end-to-end test that runs real systemd as PID 1 in a container.
# Idempotent and quick when everything is already there: safe to run on every CI run.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# podman and runc without recommends (buildah, slirp4netns, ... are not needed: the test runs one
# rootful container with --network=none); mmdebstrap with its recommends (gpg for the apt keyrings).
plain=(systemd podman runc)
with_recommends=(mmdebstrap gpg)
installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
missing_plain=() missing_rec=()
for pkg in "${plain[@]}"; do installed "$pkg" || missing_plain+=("$pkg"); done
for pkg in "${with_recommends[@]}"; do installed "$pkg" || missing_rec+=("$pkg"); done
if ((${#missing_plain[@]} + ${#missing_rec[@]})); then
    echo "installing: ${missing_plain[*]} ${missing_rec[*]}"
    apt-get update -q >/dev/null
    if ((${#missing_plain[@]})); then
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
# Written by kernel-nanny's .ci/install-systemd-test-deps.sh
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
command -v mmdebstrap >/dev/null
echo "systemd test dependencies ready: $(systemd-analyze --version | head -1), podman $(podman --version | awk '{print $3}'), runc, mmdebstrap"
