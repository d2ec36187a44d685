"""kernel-nanny for Jupyter's own tools: a jupyter_client kernel provisioner.

``kernel_nanny.jupyter.provisioner.NannyProvisioner`` is registered as the
``kernel-nanny`` provisioner (entry point group
``jupyter_client.kernel_provisioners``), so jupyter_server, JupyterLab,
nbclient and papermill run their kernels behind nannies. This package is the
only place that imports jupyter_client (the ``kernel-nanny[jupyter]`` extra);
``import kernel_nanny`` stays free of it.
"""
