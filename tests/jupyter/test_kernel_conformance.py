"""The jupyter_kernel_test conformance suite against a kernel launched through the provisioner.

The same suite runs against jupyter_client's local provisioner (``kn-local-python``)
for comparison, with the same samples: every test passes on both, and the only
sub-check left out, history ``range``, fails on both alike (IPython answers a
range of the current session with session number 0, the suite expects the real
one).

``IopubWelcomeTests`` runs too: ipykernel sends ``iopub_welcome`` only when
its XPUB socket reports a *new* subscription, and the nanny subscribes to the
few topics it reads (not to everything), so the client's catch-all
subscription is still new to the kernel.
"""

from __future__ import annotations

from typing import Any

import jupyter_kernel_test

from .conftest import LOCAL_SPEC, NANNY_SPEC


class IPythonSamples:
    """What the suite needs to know about an IPython kernel to run every one of its tests."""

    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples: list[dict[str, Any]] = [{"text": "zi", "matches": {"zip"}}]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "zip?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [{"code": "1+2+3", "result": "6"}, {"code": "[n*n for n in range(3)]", "result": "[0, 1, 4]"}]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))", "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))", "mime": "text/latex"},
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"
    support_iopub_welcome = True  # ipykernel 7's iopub is an XPUB socket


class TestNannyKernel(IPythonSamples, jupyter_kernel_test.KernelTests):
    kernel_name = NANNY_SPEC


class TestNannyKernelWelcome(IPythonSamples, jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = NANNY_SPEC


class TestLocalKernel(IPythonSamples, jupyter_kernel_test.KernelTests):
    kernel_name = LOCAL_SPEC


class TestLocalKernelWelcome(IPythonSamples, jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = LOCAL_SPEC
