"""Kernel providers beyond the local machine: kernels in containers and on other hosts."""
