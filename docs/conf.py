"""Sphinx configuration for the forge-container documentation."""

from __future__ import annotations

import configparser
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Document the source tree next to this file, whether or not the package is installed.
sys.path.insert(0, ROOT)

_setup = configparser.ConfigParser()
_setup.read(os.path.join(ROOT, "setup.cfg"))

# -- Project information -----------------------------------------------------

project = "forge-container"
author = "The forge-container authors"
copyright = "the forge-container authors"  # noqa: A001 (Sphinx's name)
release = _setup.get("metadata", "version", fallback="0.0.0")
version = ".".join(release.split(".")[:2])

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    # No intersphinx_mapping: the build runs without network access and would warn.
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]
nitpicky = False

autodoc_typehints = "description"
autodoc_member_order = "bysource"

# -- HTML output -------------------------------------------------------------

html_theme = "furo"
html_title = f"forge-container {release}"
