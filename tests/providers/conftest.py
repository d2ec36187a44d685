"""The provider tests' fixtures, one module per kind of server: ``ssh_servers`` (OpenSSH) and
``docker_engines`` (the Docker Engine and podman's Docker API), ``slurm_cluster`` (slurmctld, slurmd, munge; and one with slurmdbd on MariaDB)."""

from .docker_engines import docker_engine, podman_engine  # noqa: F401
from .slurm_cluster import slurm, slurm_accounting, slurm_accounting_cluster, slurm_cluster  # noqa: F401
from .ssh_servers import remote_host, remote_python, ssh_keys, sshd  # noqa: F401
