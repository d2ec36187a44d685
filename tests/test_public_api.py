"""The public namespace is pinned: changing it is a deliberate act."""

import kernel_nanny

EXPECTED = [
    "AuthenticationFailed",
    "BlockingDaemonClient",
    "BlockingKernelClient",
    "BlockingKernelExecution",
    "BlockingManagerClient",
    "ClientClosed",
    "ConfigError",
    "DaemonClient",
    "DaemonNotRunning",
    "DaemonUnavailable",
    "ExecutionResult",
    "ExitStatus",
    "InvalidJSON",
    "InvalidSignature",
    "KernelClient",
    "KernelCommand",
    "KernelDied",
    "KernelError",
    "KernelExecution",
    "KernelFinder",
    "KernelManager",
    "KernelNannyError",
    "KernelProvider",
    "KernelTimeout",
    "LaunchError",
    "LaunchParams",
    "LaunchResult",
    "LocalKernelManager",
    "MalformedMessage",
    "ManagerClient",
    "Message",
    "MissingDelimiter",
    "NannyUnavailable",
    "NoSuchKernelType",
    "ProtocolError",
    "ReplayedMessage",
    "RestartPolicy",
    "Session",
    "TooFewFrames",
    "__version__",
]


def test_exported_names_are_pinned_and_sorted():
    assert kernel_nanny.__all__ == EXPECTED
    assert sorted(kernel_nanny.__all__) == kernel_nanny.__all__
    for name in EXPECTED:
        assert getattr(kernel_nanny, name) is not None


def test_every_error_is_a_kernel_nanny_error():
    errors = [getattr(kernel_nanny, n) for n in EXPECTED if isinstance(getattr(kernel_nanny, n), type)]
    errors = [e for e in errors if issubclass(e, Exception)]
    assert len(errors) >= 12
    assert all(issubclass(e, kernel_nanny.KernelNannyError) for e in errors)
    assert issubclass(kernel_nanny.KernelTimeout, TimeoutError)


def test_the_local_manager_implements_the_manager_interface():
    manager = kernel_nanny.LocalKernelManager(kernel_nanny.KernelCommand(argv=["true"]), {}, None)
    assert isinstance(manager, kernel_nanny.KernelManager)


def test_manager_client_implements_the_manager_interface():
    info = {"transport": "ipc", "ip": "/tmp/x", "key": "k", "nanny_control_port": 6, "nanny_events_port": 7}
    info.update({f"{c}_port": n for n, c in enumerate(("shell", "iopub", "stdin", "control", "hb"), 1)})
    assert isinstance(kernel_nanny.ManagerClient(info), kernel_nanny.KernelManager)
