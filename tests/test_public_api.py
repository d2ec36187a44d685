"""The public namespace is pinned: changing it is a deliberate act."""

import ast
import re
from pathlib import Path

import kernel_nanny
from kernel_nanny import _exceptions

EXPECTED = [
    "AmbiguousKernel",
    "AuthenticationFailed",
    "BlockingDaemonClient",
    "BlockingKernelClient",
    "BlockingKernelExecution",
    "BlockingManagerClient",
    "ClientClosed",
    "ConfigError",
    "ConnectionInfoError",
    "DaemonAlreadyRunning",
    "DaemonClient",
    "DaemonLaunch",
    "DaemonNotRunning",
    "DaemonUnavailable",
    "ExecutionBusy",
    "ExecutionResult",
    "ExitStatus",
    "IncompatibleProtocol",
    "InvalidJSON",
    "InvalidRequest",
    "InvalidSignature",
    "JournalEntry",
    "JournalLimits",
    "KernelClient",
    "KernelCommand",
    "KernelDied",
    "KernelError",
    "KernelExecutableNotFound",
    "KernelExecution",
    "KernelFinder",
    "KernelLaunch",
    "KernelManager",
    "KernelNannyError",
    "KernelNotRunning",
    "KernelProvider",
    "KernelTimeout",
    "KernelTypeNotAllowed",
    "LaunchError",
    "LaunchParams",
    "LaunchRequest",
    "LaunchResult",
    "LocalKernelManager",
    "MalformedMessage",
    "ManagerClient",
    "MaxKernels",
    "Message",
    "MissingDelimiter",
    "NannyStopping",
    "NannyUnavailable",
    "NoSuchKernel",
    "NoSuchKernelType",
    "ProtocolError",
    "ReplayedMessage",
    "RestartPolicy",
    "Session",
    "TooFewFrames",
    "UnknownRequest",
    "__version__",
    "start_kernel",
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


def test_every_public_error_lives_in_exceptions_and_is_drawn_in_its_tree():
    tree = _exceptions.__doc__ or ""
    errors = [n for n in EXPECTED if isinstance(getattr(kernel_nanny, n), type)]
    errors = [n for n in errors if issubclass(getattr(kernel_nanny, n), Exception)]
    assert sorted(errors) == sorted(_exceptions.__all__)
    for name in errors:
        assert getattr(kernel_nanny, name).__module__ == "kernel_nanny._exceptions", name
        assert re.search(rf"[─ ]{name}\b", tree), f"{name} is not drawn in the tree of kernel_nanny._exceptions"


def test_the_root_error_is_never_raised_bare():
    bare = []
    for path in Path(kernel_nanny.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                if isinstance(func, ast.Name) and func.id == "KernelNannyError":
                    bare.append(f"{path.name}:{node.lineno}")
    assert bare == []


def test_the_local_manager_implements_the_manager_interface():
    manager = kernel_nanny.LocalKernelManager(kernel_nanny.KernelCommand(argv=["true"]), {}, None)
    assert isinstance(manager, kernel_nanny.KernelManager)


def test_manager_client_implements_the_manager_interface():
    info = {"transport": "ipc", "ip": "/tmp/x", "key": "k", "nanny_control_port": 6, "nanny_events_port": 7}
    info.update({f"{c}_port": n for n, c in enumerate(("shell", "iopub", "stdin", "control", "hb"), 1)})
    assert isinstance(kernel_nanny.ManagerClient(info), kernel_nanny.KernelManager)
