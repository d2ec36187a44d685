"""JupyterLab in a real browser, its kernels on the daemon's gateway: what a user sees, not only what the API says.

tests/daemon/test_gateway_jupyter_server.py checks the same paths over REST and WebSockets. This checks that
JupyterLab's own client code (its reconnection, its sessions, its output areas) gets along with them: ``jupyter lab``
in gateway mode with the classes the how-to configures (``kernel_nanny.jupyter.gateway``), driven in a headless
Chromium (tests/jupyter/browser.py). A failed test leaves a screenshot in ``test-artifacts/`` at the repository root,
with the page's console and the lab server's and daemon's logs beside it.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Response

from kernel_nanny.daemon.keys import DaemonKeys
from kernel_nanny.gateway.models import public_kernel_id
from tests.daemons import GATEWAY_CONFIG, RunningDaemon
from tests.jupyter.browser import JupyterLabPage, Lab, chromium, jupyter_lab, write_notebook
from tests.jupyter_api import JupyterAPI

#: A browser, two servers and JupyterLab's own reconnection back-off: more than the suite's 120 s on a busy machine.
pytestmark = pytest.mark.timeout(300)

#: Where a failed test leaves its screenshot and logs (ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NOTEBOOK = "nb.ipynb"
#: A cell printing one numbered line every 0.3 s: long enough to act on the page mid-run, short enough to wait for.
TICKER = "for i in range({n}):\n    print(f'line {{i}}', flush=True)\n    time.sleep(0.3)"
#: When a kernel WebSocket fails, JupyterLab 4 asks the server for the kernel's model before it reconnects; with the
#: server down that request fails, and it asks again 10 to 30 s later (at random): a restarted server is found late.
RECONNECT_WINDOW = 30


@dataclass
class GatewayLab:
    """A daemon serving the gateway, and ``jupyter lab`` servers in gateway mode against it."""

    daemon: RunningDaemon
    tmp: Path
    gateway_url: str
    gateway_token: str

    def server(self, *, port: int = 0, token: str | None = None) -> AbstractAsyncContextManager[Lab]:
        """A ``jupyter lab`` for the block; all share one session DB, so one started with the ``port`` and ``token``
        of an earlier one is that server restarted (the cookie secret is in the test's runtime directory too)."""
        return jupyter_lab(
            self.tmp / "root",
            self.tmp / "lab",
            f"--gateway-url={self.gateway_url}",
            f"--GatewayClient.auth_token={self.gateway_token}",
            "--ServerApp.kernel_manager_class=kernel_nanny.jupyter.gateway.GatewayKernels",
            "--ServerApp.session_manager_class=kernel_nanny.jupyter.gateway.GatewaySessions",
            f"--SessionManager.database_filepath={self.tmp / 'sessions.db'}",
            "--ServerApp.log_level=DEBUG",  # every request in the log a failed test leaves
            port=port,
            token=token,
        )

    async def kernels(self) -> list[str]:
        """The daemon's kernels, by id in the UUID form jupyter_server and JupyterLab use."""
        async with self.daemon.client() as client:
            return [public_kernel_id(k["kernel_id"]) for k in await client.list_kernels()]

    async def execution_state(self, kernel_id: str) -> str:
        """The kernel's own last status, as its nanny saw it (not what a page shows)."""
        async with self.daemon.client() as client:
            return str((await client.get_kernel(kernel_id.replace("-", "")))["info"]["execution_state"])


def _free_port() -> int:
    """A loopback port free now: a restarted server must listen where the open page reconnects to."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def notebook_kernel(lab: Lab) -> str:
    """The id of the kernel the notebook's session has, as the lab server lists it."""
    sessions = await JupyterAPI(lab.url, lab.token).call("GET", "/api/sessions")
    assert [s["path"] for s in sessions] == [NOTEBOOK], sessions
    return str(sessions[0]["kernel"]["id"])


@pytest.fixture
async def gateway_lab(make_daemon, tmp_path: Path) -> GatewayLab:
    """The daemon, and the notebook (kernelspec ``python3``, 4 empty cells) in the lab servers' root."""
    daemon = await make_daemon(GATEWAY_CONFIG)
    async with daemon.client() as client:
        url = (await client.info())["gateway_url"]
    (tmp_path / "root").mkdir()
    write_notebook(tmp_path / "root" / NOTEBOOK, "python3", cells=("",) * 4, display_name="Python 3 (ipykernel)")
    return GatewayLab(daemon, tmp_path, url, DaemonKeys(daemon.state_dir).gateway_token())


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
def open_notebook(
    request: pytest.FixtureRequest, gateway_lab: GatewayLab, browser: Browser
) -> Callable[[Sequence[Lab]], AbstractAsyncContextManager[JupyterLabPage]]:
    """``open_notebook(labs)``: the notebook in a fresh page of ``labs[0]``; if the block fails, its screenshot, the
    page's console and network errors, and the logs of the lab servers (``labs``, appended to later) and the daemon
    are saved in ``test-artifacts/``, named after the test."""
    screenshot = ARTIFACTS / f"{request.node.name}.png"

    @asynccontextmanager
    async def opened(labs: Sequence[Lab]) -> AsyncIterator[JupyterLabPage]:
        console: list[str] = []

        def note(text: str) -> None:
            console.append(f"{datetime.now():%H:%M:%S.%f} {text}")

        def refused(response: Response) -> None:
            if response.status >= 400:
                note(f"HTTP {response.status}: {response.request.method} {response.url}")

        try:
            async with JupyterLabPage.session(browser, labs[0], NOTEBOOK, failure_screenshot=screenshot) as page:
                page.page.on("console", lambda m: note(f"console.{m.type}: {m.text}"))
                page.page.on("requestfailed", lambda r: note(f"failed: {r.method} {r.url} {r.failure}"))
                page.page.on("response", refused)
                yield page
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            screenshot.with_suffix(".console.log").write_text("\n".join(console) + "\n")
            lab_log = "\n=== next server ===\n".join(lab.log.decode(errors="replace") for lab in labs)
            screenshot.with_suffix(".lab.log").write_text(lab_log)
            screenshot.with_suffix(".daemon.log").write_text(gateway_lab.daemon.log())
            raise

    return opened


async def test_a_notebook_prints_displays_interrupts_and_restarts_on_a_daemon_kernel(
    gateway_lab: GatewayLab, open_notebook: Callable[[Sequence[Lab]], AbstractAsyncContextManager[JupyterLabPage]]
) -> None:
    async with gateway_lab.server() as lab, open_notebook([lab]) as page:
        await page.run_cell(
            0,
            "from IPython.display import HTML, display\n"
            "before_restart = 1\n"
            "print('printed by the kernel')\n"
            "display(HTML('<b>rendered</b> <i>HTML</i>'))",
        )
        assert "printed by the kernel" in await page.output_text(0)
        html = page.cell(0).locator('.jp-OutputArea-output[data-mime-type="text/html"]')
        assert await html.locator("b").inner_text() == "rendered"  # rendered, not shown as its source
        assert await html.locator("i").inner_text() == "HTML"

        kernel_id = await notebook_kernel(lab)
        assert await gateway_lab.kernels() == [kernel_id]  # the daemon's kernel, the only one
        ps = subprocess.run([sys.executable, "-m", "kernel_nanny", "ps"], capture_output=True, text=True, check=True)
        assert kernel_id.replace("-", "")[:12] in ps.stdout

        # It prints before it sleeps: once the line shows, the interrupt cannot come before the cell runs.
        await page.run_cell(1, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", wait=False)
        await page.wait_for_output(1, "sleeping")
        await page.interrupt()
        await page.wait_for_cell(1)
        assert "KeyboardInterrupt" in await page.output_text(1)

        await page.restart()
        await page.run_cell(2, "print('before_restart' in dir())")
        assert (await page.output_text(2)).strip() == "False"
        # Restarted in place: the same daemon kernel, the notebook's session unchanged.
        assert await notebook_kernel(lab) == kernel_id
        assert await gateway_lab.kernels() == [kernel_id]


async def test_an_open_notebook_reconnects_to_a_restarted_server_and_shows_the_output_it_missed(
    gateway_lab: GatewayLab, open_notebook: Callable[[Sequence[Lab]], AbstractAsyncContextManager[JupyterLabPage]]
) -> None:
    """kill -9 of the lab server mid-cell, a new one on its port: the page reconnects by itself, and the cell's
    output, also what the kernel printed while no server was up, shows once and in order, then its prompt's number.

    JupyterLab finds the new server late (``RECONNECT_WINDOW``) and cannot be hurried without changing what is tested.
    """
    port, token = _free_port(), secrets.token_hex(16)  # the second server must accept what the page has
    lines = [f"line {i}" for i in range(20)]
    async with AsyncExitStack() as servers:
        labs = [await servers.enter_async_context(gateway_lab.server(port=port, token=token))]
        async with open_notebook(labs) as page:
            before = await page.run_cell(0, "import time\nx = 41")
            kernel_id = await notebook_kernel(labs[0])
            await page.run_cell(1, TICKER.format(n=len(lines)), wait=False)
            await page.wait_for_output(1, lines[0])
            labs[0].process.kill()
            await labs[0].process.wait()

            # Nothing asks the new server anything before the page does: a listing would adopt the kernel for it.
            labs.append(await servers.enter_async_context(gateway_lab.server(port=port, token=token)))
            count = await page.wait_for_cell(1, timeout=2 * RECONNECT_WINDOW + 30)  # a slow machine's margin
            assert (await page.output_text(1)).splitlines() == lines
            assert count == before + 1
            # JupyterLab said so while no server answered, and leaves the dialog open (modal, it takes the clicks).
            await page.close_dialog("Server Connection Error")
            await page.run_cell(2, "print(x)")
            assert (await page.output_text(2)).strip() == "41"  # the same kernel, its variables intact
            assert await notebook_kernel(labs[1]) == kernel_id
            assert await gateway_lab.kernels() == [kernel_id]


async def test_a_page_reloaded_mid_cell_gets_the_same_kernel_back_idle_when_the_cell_ends(
    gateway_lab: GatewayLab, open_notebook: Callable[[Sequence[Lab]], AbstractAsyncContextManager[JupyterLabPage]]
) -> None:
    """A reload mid-cell: the notebook reopens on the same kernel (variables intact), busy until the cell ends, then
    idle. The cell's later output is not on the reloaded page, and cannot be: that page never sent the request, and
    JupyterLab shows output only under the cell whose request it sent (nothing records which cell sent what).

    The cell runs until the test creates a file, so "still running" after the reload holds however slow the reload.
    """
    done = gateway_lab.tmp / "done"
    async with gateway_lab.server() as lab, open_notebook([lab]) as page:
        await page.run_cell(0, "import os, time\nx = 41")
        kernel_id = await notebook_kernel(lab)
        await page.run_cell(
            1,
            f"print('running', flush=True)\nwhile not os.path.exists({str(done)!r}):\n    time.sleep(0.1)",
            wait=False,
        )
        await page.wait_for_output(1, "running")

        # The kernel is busy: it answers the page's kernel_info only after the cell, so the reconnected page shows
        # "unknown" (or "busy"), never "idle" (the indicator's own default, shown before the page has a kernel).
        await page.reload(until=("unknown", "busy"))
        assert await gateway_lab.execution_state(kernel_id) == "busy"
        done.touch()
        await page.wait_for_kernel_status("idle")
        await page.run_cell(2, "print(x)")
        assert (await page.output_text(2)).strip() == "41"
        assert await notebook_kernel(lab) == kernel_id
        assert await gateway_lab.kernels() == [kernel_id]
