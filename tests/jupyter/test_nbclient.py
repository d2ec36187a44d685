"""nbclient executes a real notebook through the provisioner: rich output, errors, nothing left behind."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .conftest import NANNY_SPEC, running_ids

#: A 1x1 green PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


def notebook() -> nbformat.NotebookNode:
    return new_notebook(
        cells=[
            new_markdown_cell("# A notebook run behind a nanny"),
            new_code_cell("import os, sys\nx = 21\nprint('stdout line')\nprint('stderr line', file=sys.stderr)"),
            new_code_cell(
                "from pathlib import Path\n"
                "print(Path(f'/proc/{os.getppid()}/cmdline').read_bytes().replace(b'\\0', b' ').decode())"
            ),
            new_code_cell("from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))"),
            new_code_cell(f"import base64\nfrom IPython.display import Image\nImage(data=base64.b64decode({PNG!r}))"),
            new_code_cell("from IPython.display import JSON\nJSON({'values': [1, 2]})"),
            new_code_cell("1 / 0"),
            new_code_cell("x * 2"),
        ],
        metadata={"kernelspec": {"name": NANNY_SPEC, "display_name": NANNY_SPEC, "language": "python"}},
    )


def outputs(cell: nbformat.NotebookNode, output_type: str) -> list[nbformat.NotebookNode]:
    return [output for output in cell.outputs if output.output_type == output_type]


async def test_a_notebook_runs_with_rich_output_and_an_allowed_error(tmp_path):
    nb = notebook()
    client = NotebookClient(nb, allow_errors=True, timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    await client.async_execute()
    cells = nb.cells
    streams = {output.name: output.text for output in outputs(cells[1], "stream")}
    assert streams == {"stdout": "stdout line\n", "stderr": "stderr line\n"}
    assert "kernel_nanny.nanny" in outputs(cells[2], "stream")[0].text  # the kernel's parent is a nanny
    assert outputs(cells[3], "display_data")[0].data["text/html"] == "<b>bold</b>"
    assert outputs(cells[4], "execute_result")[0].data["image/png"].strip() == PNG
    assert outputs(cells[5], "execute_result")[0].data["application/json"] == {"values": [1, 2]}
    [error] = outputs(cells[6], "error")
    assert error.ename == "ZeroDivisionError"
    assert outputs(cells[7], "execute_result")[0].data["text/plain"] == "42"  # ran on after the error
    assert running_ids() == set()
    nbformat.validate(nb)


async def test_an_error_cell_stops_the_run_without_allow_errors(tmp_path):
    nb = notebook()
    client = NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        await client.async_execute()
    assert nb.cells[7].outputs == []  # never ran
    assert running_ids() == set()


def test_the_blocking_api_and_a_kernel_name_override(tmp_path):
    """``NotebookClient.execute()`` (what ``jupyter execute`` and papermill call), kernel chosen by name."""
    nb = new_notebook(cells=[new_code_cell("print(6 * 7)")])
    NotebookClient(nb, kernel_name=NANNY_SPEC, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs[0].text == "42\n"
    assert running_ids() == set()


async def test_a_kernel_crash_mid_run_is_a_dead_kernel_for_nbclient(tmp_path):
    """The nanny restarts the kernel, yet nbclient learns the cell's kernel died instead of waiting for ever."""
    nb = new_notebook(cells=[new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")])
    client = NotebookClient(nb, kernel_name=NANNY_SPEC, resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(DeadKernelError):
        await client.async_execute()
    assert running_ids() == set()
