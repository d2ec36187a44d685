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
