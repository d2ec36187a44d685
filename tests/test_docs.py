"""The documentation builds without a single warning (Sphinx -W), as CI requires."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_build_without_warnings(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "index.html").exists()


def test_no_page_installs_kernel_nanny_from_an_index():
    """kernel-nanny is not published on an index: every install goes through a checkout (pip install -e .)."""
    from_index = re.compile(r"pip install[^\n`#&;|]*?(?<![\w./-])['\"]?kernel-nanny(\[|['\"\s]|$)", re.M)
    pages = [*DOCS.rglob("*.rst"), DOCS.parent / "README.md"]
    offenders = [f"{page.name}: {m.group(0)}" for page in pages for m in from_index.finditer(page.read_text())]
    assert offenders == []
    messages = [p for p in (DOCS.parent / "kernel_nanny").rglob("*.py") if from_index.search(p.read_text())]
    assert messages == []


def test_the_readmes_first_python_example_runs_quietly(tmp_path):
    """The README's first example prints what it says, and nothing on stderr (no kernel banner)."""
    readme = (DOCS.parent / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S)
    assert example is not None
    script = tmp_path / "example.py"
    script.write_text(example.group(1))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n 42\n"
    assert result.stderr == ""
