"""Sphinx configuration for the kernel-nanny documentation.

Build with ``python3 -m sphinx -W -b html docs docs/_build/html``; the build
needs no network access (intersphinx is deliberately not enabled).
"""

from __future__ import annotations

import os
import sys

# Document the source tree next to this file even when it is not installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from kernel_nanny._version import __version__  # noqa: E402

project = "kernel-nanny"
author = "the kernel-nanny developers"
copyright = "the kernel-nanny developers"
version = ".".join(__version__.split(".")[:2])
release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

exclude_patterns = ["_build"]
nitpicky = False
highlight_language = "python3"

# Docstrings are reStructuredText; napoleon only reads Google/NumPy-style sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Every directive in reference/ says which members it wants; nothing is implied.
autodoc_default_options: dict[str, object] = {}

html_theme = "alabaster"
html_title = f"kernel-nanny {release}"
html_theme_options = {
    "description": "Find, run and manage Jupyter kernels.",
    "fixed_sidebar": True,
}
