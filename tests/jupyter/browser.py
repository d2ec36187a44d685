"""JupyterLab 4 in a real, headless browser: Debian's Chromium driven by Playwright's asyncio API.

For tests that check what a user of JupyterLab sees when its kernels run behind kernel-nanny: open a notebook, run
cells, read their output, interrupt and restart the kernel from the toolbar and the Kernel menu, reload the page.

Why it is built this way:

* Playwright cannot download its own browser here (``playwright install`` needs a CDN this machine cannot reach), so
  it launches Debian's ``chromium`` package (``executable_path``). Playwright itself adds ``--no-sandbox`` (Chromium's
  sandbox refuses to run as root), ``--disable-dev-shm-usage`` (small /dev/shm in containers) and
  ``--disable-background-networking`` (no connections to Google's hosts on a closed network).
* The asyncio API, not the sync one: the suite runs under pytest-asyncio (``asyncio_mode = "auto"``) and Playwright's
  sync API refuses to start inside a running event loop.
* No fixed sleeps: every wait is for something JupyterLab shows (a cell's prompt, the toolbar's kernel status
  indicator, a dialog) or a REST response the page itself waits for (interrupt, restart, save).
* The server gets its own settings and workspaces folders, so neither a user's settings nor a layout saved by an
  earlier run changes the page, and the "get notified about official Jupyter news?" toast is turned off.
* Notebooks are written to disk with their kernelspec in the metadata, so JupyterLab starts that kernel without
  asking ("Select Kernel" dialog).

Selectors are JupyterLab 4's own class names and command ids (``.jp-Cell``, ``.jp-InputPrompt``,
``.jp-OutputArea-output``, ``data-command="notebook:interrupt-kernel"``, ``data-command="kernelmenu:restart"``,
``.jp-Notebook-ExecutionIndicator[data-status]``, ``.jp-Dialog-button.jp-mod-accept``); menu labels are English.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Browser, Dialog, Locator, Page, Response, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

#: The Debian package that provides the browser (``/usr/bin/chromium``); scripts/test installs it as root.
CHROMIUM_PACKAGE = "chromium"

#: Statuses of the toolbar's kernel indicator once the page talks to a running kernel.
CONNECTED = ("idle", "busy")

_URL = re.compile(r"(http://127\.0\.0\.1:\d+)/")

# A prompt reads "[ ]:" (never run), "[*]:" (queued or running) or "[7]:" (done). JupyterLab rewrites its text
# whenever a run starts or ends, even to the same text, so an observer armed just before a run tells "this run has
# finished" apart from "an earlier run left this number" (the number may repeat after a restart).
_ARM_PROMPT = """el => {
    el.__knRan = false;
    const observer = new MutationObserver(() => { el.__knRan = true; observer.disconnect(); });
    observer.observe(el, {childList: true, characterData: true, subtree: true});
}"""
_PROMPT_DONE = r"el => el.__knRan !== false && /^\[\d+\]:$/.test(el.textContent.trim())"
# A run has started: the prompt was rewritten since armed, to "[*]:" or (a quick cell) its number. A run refused
# before it starts (no kernel yet) rewrites "[ ]:" to itself.
_RUN_STARTED = r"el => el.__knRan === true && /^\[(\*|\d+)\]:$/.test(el.textContent.trim())"
#: How often :meth:`JupyterLabPage.run_cell` presses Ctrl+Enter before it gives up, and how long it waits on each.
_RUN_ATTEMPTS = 3
_RUN_STARTED_WITHIN = 5
_OUTPUT_HAS = """([cell, text]) => [...cell.querySelectorAll('.jp-OutputArea-output')]
    .map(e => e.innerText).join('\\n').includes(text)"""
# The main area's tab for a document carries the document's path in its title and its widget's id in data-id.
_PANEL_ID = """path => {
    for (const tab of document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab[data-type="document-title"]')) {
        if ((tab.getAttribute('title') || '').split('\\n').includes('Path: ' + path)) return tab.dataset.id;
    }
    return null;
}"""
_EDITOR_TEXT = "el => [...el.querySelectorAll('.cm-line')].map(line => line.textContent).join('\\n')"


def chromium_executable() -> str:
    """Debian's Chromium, or an error that says how to install it (Playwright's own download does not work here)."""
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            f"no 'chromium' on PATH: the browser tests use Debian's package, install it as root with "
            f"'apt-get install -y {CHROMIUM_PACKAGE}' (scripts/test does)"
        )
    return path


@asynccontextmanager
async def chromium(*, headless: bool = True) -> AsyncIterator[Browser]:
    """A Chromium browser for the block (one Playwright driver process and one browser, both stopped after)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_executable(), headless=headless)
        try:
            yield browser
        finally:
            await browser.close()


def write_notebook(path: Path, kernel_name: str, cells: Sequence[str] = ("",), display_name: str | None = None) -> Path:
    """Write an nbformat 4.5 notebook of code cells whose metadata names ``kernel_name``.

    With the kernelspec in the file, JupyterLab starts that kernel when the notebook opens instead of asking for one.
    Write as many cells as the test will run: :meth:`JupyterLabPage.run_cell` fills and runs existing cells.
    """
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{i}",
                "metadata": {},
                "outputs": [],
                "source": s,
            }
            for i, s in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"name": kernel_name, "display_name": display_name or kernel_name, "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))
    return path


@dataclass
class Lab:
    """A running ``jupyter lab`` server: its base URL, token and the process (its log collects in ``log``)."""

    url: str
    token: str
    root_dir: Path
    process: asyncio.subprocess.Process
    log: bytearray = field(default_factory=bytearray)


@asynccontextmanager
async def jupyter_lab(
    root_dir: Path,
    state_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    port: int = 0,
    token: str | None = None,
) -> AsyncIterator[Lab]:
    """Run ``jupyter lab`` on 127.0.0.1 serving ``root_dir`` for the block; ``args`` go to the server.

    ``state_dir`` (empty, the test's) holds the server's own user settings and workspaces, so the page shows the same
    thing on every run. The server is stopped at the end with SIGTERM, on which it shuts its kernels down.

    ``port`` 0 lets the system choose a free one. A server started again for a page already open needs the same
    ``port`` (the page reconnects to the address it was loaded from; with no port retries, a port still taken is an
    error, not another port) and the same ``token`` (the page sends the one it was given). Its login cookie stays
    valid when the cookie secret does: jupyter_server keeps it in the runtime directory (``JUPYTER_RUNTIME_DIR``).
    """
    token = token or secrets.token_hex(16)
    settings = state_dir / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        "--allow-root",  # CI runs as root
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={state_dir / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    log = bytearray()
    try:
        # It logs the URL (and so the port it was given) once it has picked the port.
        while (match := _URL.search(log.decode(errors="replace"))) is None:
            line = await asyncio.wait_for(process.stderr.readline(), timeout)
            if not line:
                raise RuntimeError(f"jupyter lab exited before serving:\n{log.decode(errors='replace')}")
            log += line
    except BaseException:
        process.kill()
        await process.wait()
        raise

    async def drain(stream: asyncio.StreamReader) -> None:  # keep the log pipe from filling up
        while chunk := await stream.read(65536):
            log.extend(chunk)

    drainer = asyncio.ensure_future(drain(process.stderr))
    lab = Lab(match.group(1), token, root_dir, process, log)
    try:
        await _accepting(lab.url, process, timeout)
        yield lab
    finally:
        if process.returncode is None:
            # SIGTERM: it shuts its kernels down and exits (SIGINT may be ignored, inherited from a background job).
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        await drainer


async def _accepting(url: str, process: asyncio.subprocess.Process, timeout: float) -> None:
    """Wait until the server's port accepts connections.

    jupyter_server logs its URL before it binds the port and announces nothing after, so there is no event to wait
    on: this retries a connection, bounded in time.
    """
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            if loop.time() > deadline or process.returncode is not None:
                raise
            await asyncio.sleep(0.02)
        else:
            writer.close()
            await writer.wait_closed()
            return


class JupyterLabPage:
    """One browser page showing one notebook in JupyterLab 4, with the actions a user takes on it.

    Cells are addressed by their index in the notebook (0 is the first). Timeouts are in seconds. Use
    :meth:`session` to get one: it opens the notebook, and saves a screenshot if the block fails.
    """

    def __init__(self, page: Page, lab: Lab, timeout: float = 30) -> None:
        self.page = page
        self.lab = lab
        self.timeout = timeout
        self.path: str | None = None
        self._panel: Locator | None = None
        page.set_default_timeout(timeout * 1000)
        # JupyterLab asks before leaving a page with unsaved changes; a test's reload means to leave.
        page.on("dialog", self._on_dialog)

    @classmethod
    @asynccontextmanager
    async def session(
        cls,
        browser: Browser,
        lab: Lab,
        path: str,
        *,
        failure_screenshot: Path | None = None,
        timeout: float = 30,
    ) -> AsyncIterator[JupyterLabPage]:
        """A fresh browser context (no cookies or storage from other tests) showing the notebook at ``path``.

        If the block raises, the page is saved to ``failure_screenshot`` first (when given), so a failed test
        leaves a picture of what JupyterLab showed.
        """
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            lab_page = cls(await context.new_page(), lab, timeout)
            try:
                await lab_page.open_notebook(path)
                yield lab_page
            except BaseException:
                if failure_screenshot is not None:
                    with suppress(Exception):  # the test's own error matters more than a missing picture
                        await lab_page.screenshot(failure_screenshot)
                raise
        finally:
            await context.close()

    async def _on_dialog(self, dialog: Dialog) -> None:
        if dialog.type == "beforeunload":
            await dialog.accept()
        else:
            await dialog.dismiss()

    @property
    def panel(self) -> Locator:
        """The notebook's panel (its toolbar and cells), found by its tab; open a notebook first."""
        if self._panel is None:
            raise RuntimeError("no notebook open: call open_notebook() first")
        return self._panel

    async def open_notebook(self, path: str, *, until: Sequence[str] = CONNECTED) -> None:
        """Open the notebook at ``path`` (relative to the server's root) and wait until it is shown.

        Shown means its cells are on the page and its kernel status is one of ``until`` (connected, by default; an
        empty ``until`` waits for the cells only). The URL carries the token, which logs the page in (a cookie):
        later reloads need no token.
        """
        self.path = path
        await self.page.goto(f"{self.lab.url}/lab/tree/{quote(path)}?token={self.lab.token}")
        await self._ready(until)

    async def reload(self, *, until: Sequence[str] = CONNECTED) -> None:
        """Reload the page (as F5 does: unsaved changes are dropped) and wait until the notebook is shown again.

        Shown as for :meth:`open_notebook`. Mid-run, the page reconnects to the same kernel, but its status stays
        "unknown" until the kernel answers JupyterLab's kernel_info request, which ipykernel does only once the
        running cell has finished: pass ``until=("unknown",)`` to act on the page before that. (The indicator shows
        "idle" before the page has connected to any kernel, so ``until=()`` says nothing about the kernel.)
        """
        await self.page.reload()
        await self._ready(until)

    async def _ready(self, until: Sequence[str]) -> None:
        assert self.path is not None
        # Each load makes a new panel (new widget id): find it again by its tab.
        handle = await self.page.wait_for_function(_PANEL_ID, arg=self.path)
        panel_id = await handle.json_value()
        self._panel = self.page.locator(f'.jp-NotebookPanel[id="{panel_id}"]')
        await self.panel.locator(".jp-Cell .cm-content").first.wait_for()
        if until:
            await self.wait_for_kernel_status(*until)

    def cell(self, index: int) -> Locator:
        """The cell at ``index`` (code or markdown), as a Playwright locator."""
        return self.panel.locator(".jp-Notebook .jp-Cell").nth(index)

    async def cell_count(self) -> int:
        return await self.panel.locator(".jp-Notebook .jp-Cell").count()

    async def set_cell(self, index: int, code: str) -> None:
        """Replace the source of cell ``index`` with ``code``, typed into its editor.

        The text goes in as one input (as a paste does): typed key by key, the editor would indent new lines and
        close brackets itself.
        """
        count = await self.cell_count()
        if index >= count:
            raise IndexError(f"cell {index}: the notebook has {count} cells (write_notebook(cells=...) makes more)")
        editor = self.cell(index).locator(".cm-content")
        await editor.click()
        await self.page.keyboard.press("Control+a")
        if code:
            await self.page.keyboard.insert_text(code)
        else:
            await self.page.keyboard.press("Delete")
        text = await editor.evaluate(_EDITOR_TEXT)
        if text != code:
            raise AssertionError(f"cell {index} reads {text!r} after typing {code!r}")

    async def run_cell(
        self, index: int, code: str | None = None, *, wait: bool = True, timeout: float | None = None
    ) -> int | None:
        """Run cell ``index`` (after replacing its source with ``code``, if given) with Ctrl+Enter.

        With ``wait`` (the default) return its execution count once it has finished, else return None as soon as
        the run is requested: then :meth:`wait_for_cell` waits for it (say after an interrupt).
        """
        if code is not None:
            await self.set_cell(index, code)
        else:
            await self.cell(index).locator(".cm-content").click()
        editor = self.cell(index).locator(".cm-content")
        if not await editor.evaluate(_EDITOR_TEXT):
            raise ValueError(f"cell {index} is empty: JupyterLab does not run an empty cell")
        prompt = await self.cell(index).locator(".jp-InputPrompt").element_handle()
        await prompt.evaluate(_ARM_PROMPT)
        # A key goes where the focus is, and JupyterLab moves it while it settles after opening a notebook (seen:
        # the notebook in command mode, the prompt left at "[ ]:", in 2 runs of 14): focus the editor with the key,
        # and press again only if no run started. JupyterLab shows "[*]:" in the key's handler, which has run when
        # the press returns, so a run that started is seen and a cell never runs twice.
        for _ in range(_RUN_ATTEMPTS):
            await editor.press("Control+Enter")  # notebook:run-cell: run, stay on the cell
            try:
                await self.page.wait_for_function(_RUN_STARTED, arg=prompt, timeout=_RUN_STARTED_WITHIN * 1000)
                break
            except PlaywrightTimeoutError:
                continue
        else:
            raise RuntimeError(
                f"cell {index} did not start after {_RUN_ATTEMPTS} Ctrl+Enter: kernel {await self.kernel_status()!r}"
            )
        return await self.wait_for_cell(index, timeout) if wait else None

    async def wait_for_cell(self, index: int, timeout: float | None = None) -> int:
        """Wait until the last run of cell ``index`` has finished (its prompt shows a number); return that number."""
        prompt = self.cell(index).locator(".jp-InputPrompt")
        timeout = self.timeout if timeout is None else timeout
        try:
            await self.page.wait_for_function(_PROMPT_DONE, arg=await prompt.element_handle(), timeout=timeout * 1000)
        except PlaywrightTimeoutError:
            raise TimeoutError(
                f"cell {index} did not finish in {timeout}s: prompt {await prompt.text_content()!r}, "
                f"kernel {await self.kernel_status()!r}, output {await self.output_text(index)!r}"
            ) from None
        count = await self.execution_count(index)
        assert count is not None
        return count

    async def execution_count(self, index: int) -> int | None:
        """The number in cell ``index``'s prompt: None if it never ran or is running ("[ ]:", "[*]:")."""
        text = (await self.cell(index).locator(".jp-InputPrompt").text_content() or "").strip()
        match = re.fullmatch(r"\[(\d+)\]:", text)
        return int(match.group(1)) if match else None

    async def output_text(self, index: int) -> str:
        """The text of cell ``index``'s outputs as shown (stdout, stderr, results, rendered HTML), one per line."""
        texts = await self.cell(index).locator(".jp-OutputArea-output").all_inner_texts()
        return "\n".join(texts)

    async def wait_for_output(self, index: int, text: str, timeout: float | None = None) -> str:
        """Wait until cell ``index``'s output contains ``text`` (the cell may still be running); return the output."""
        timeout = self.timeout if timeout is None else timeout
        cell = await self.cell(index).element_handle()
        try:
            await self.page.wait_for_function(_OUTPUT_HAS, arg=[cell, text], timeout=timeout * 1000)
        except PlaywrightTimeoutError:
            raise TimeoutError(
                f"cell {index} did not show {text!r} in {timeout}s: output {await self.output_text(index)!r}"
            ) from None
        return await self.output_text(index)

    async def kernel_status(self) -> str:
        """The toolbar's kernel status indicator: "idle", "busy", "starting", "restarting", "dead", "unknown"..."""
        return await self.panel.locator(".jp-Notebook-ExecutionIndicator").get_attribute("data-status") or ""

    async def wait_for_kernel_status(self, *statuses: str, timeout: float | None = None) -> str:
        """Wait until the kernel status indicator shows one of ``statuses``; return the one it shows."""
        selector = ", ".join(f'.jp-Notebook-ExecutionIndicator[data-status="{s}"]' for s in statuses)
        timeout = self.timeout if timeout is None else timeout
        try:
            await self.panel.locator(selector).wait_for(timeout=timeout * 1000)
        except PlaywrightTimeoutError:
            raise TimeoutError(
                f"kernel status not {' or '.join(statuses)} in {timeout}s: {await self.kernel_status()!r}"
            ) from None
        return await self.kernel_status()

    async def interrupt(self) -> None:
        """Click the toolbar's interrupt button; return once the server has answered the interrupt request."""
        async with self.page.expect_response(_kernel_request("interrupt")) as response:
            await self.panel.locator('.jp-Toolbar [data-command="notebook:interrupt-kernel"]').click()
        if not (await response.value).ok:
            raise RuntimeError(f"interrupt failed: HTTP {(await response.value).status}")

    async def close_dialog(self, title: str) -> bool:
        """Close JupyterLab's dialog titled ``title`` with its last button (its default), as a user would.

        Return whether one was open. A dialog is modal: no click reaches the page behind it. JupyterLab opens one
        by itself when its server is unreachable ("Server Connection Error") and leaves it open after the server is
        back.
        """
        dialog = self.page.locator(".jp-Dialog").filter(has=self.page.locator(".jp-Dialog-header", has_text=title))
        if not await dialog.count():
            return False
        await dialog.locator(".jp-Dialog-footer .jp-Dialog-button").last.click()
        await dialog.wait_for(state="detached")
        return True

    async def restart(self) -> None:
        """Restart the kernel from the Kernel menu, confirm in the dialog, and wait until the kernel is idle again.

        The server answers the restart request once the new kernel replies, and the page shows "restarting" until
        it has reconnected, so idle after that answer is the restarted kernel's.
        """
        await self.page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^Kernel$")).click()
        await self.page.locator(
            '.lm-Menu li[data-command="kernelmenu:restart"], .lm-Menu li[data-command="kernel:restart"]'
        ).click()
        async with self.page.expect_response(_kernel_request("restart")) as response:
            await self.page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
        if not (await response.value).ok:
            raise RuntimeError(f"restart failed: HTTP {(await response.value).status}")
        await self.wait_for_kernel_status("idle")

    async def save(self) -> None:
        """Save the notebook (toolbar button); return once the server has written it."""
        async with self.page.expect_response(
            lambda r: r.request.method == "PUT" and f"/api/contents/{quote(self.path or '')}" in r.url
        ) as response:
            await self.panel.locator('.jp-Toolbar [data-command="docmanager:save"]').click()
        if not (await response.value).ok:
            raise RuntimeError(f"save failed: HTTP {(await response.value).status}")

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the whole page at ``path`` (its folder is created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path), full_page=True)
        return path


def _kernel_request(action: str) -> Callable[[Response], bool]:
    """Matches the page's ``POST /api/kernels/<id>/<action>`` response (JupyterLab adds a cache-busting query)."""
    pattern = re.compile(rf"/api/kernels/[^/?]+/{action}(\?|$)")
    return lambda r: r.request.method == "POST" and pattern.search(r.url) is not None
