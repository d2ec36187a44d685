"""The Jupyter Kernel Gateway HTTP/WebSocket API, served by the daemon (``kernel-nanny serve --gateway``).

jupyter_server in gateway mode (``jupyter lab --gateway-url=...``) lists
kernel types, starts kernels and talks to them through this API instead of
running them itself, so every kernel-nanny kernel type appears in JupyterLab
and its kernels outlive any number of server restarts. Kernels started here
are ordinary daemon kernels (``kernel-nanny ps`` lists them).

:mod:`.settings` is plain Python (the daemon reads ``[gateway]`` with it);
the server (:mod:`.server`) imports tornado, so the daemon imports it only
when the gateway is on.
"""
