"""``python -m kernel_nanny.providers.docker_reap HOST CONTAINER``: force-remove one container.

Run by a Docker kernel's lifeline when the container's owner (a nanny, or the
process that launched it) died without removing it. ``HOST`` is the engine's
URL, or empty for ``$DOCKER_HOST`` / the SDK's default.
"""

from __future__ import annotations

import sys

from .._exceptions import LaunchError
from .docker_engine import connect, docker_sdk


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    host, container_id = args
    try:
        client = connect(host or None)
    except LaunchError as exc:
        print(f"kernel-nanny: cannot remove container {container_id}: {exc}", file=sys.stderr)
        return 1
    try:
        client.api.remove_container(container_id, force=True)
    except docker_sdk().errors.NotFound:
        pass
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
