"""Sphinx configuration for the poolhouse documentation."""

from __future__ import annotations

import os
import sys

sys.path.insert(
    0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "lib"))
)

project = "poolhouse"
author = "the poolhouse authors"
copyright = "the poolhouse authors"
release = "0.1.0"
version = "0.1"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]
# No intersphinx: the build must not need the network.

autodoc_typehints = "description"
autodoc_member_order = "bysource"

nitpicky = True
# Without intersphinx (no network), references into the standard library,
# blinker and the type aliases of annotations cannot resolve; every other
# dead reference fails the build.
nitpick_ignore_regex = [
    (r"py:.*", r"(collections\.abc|typing|weakref|time|asyncio|blinker)(\..*)?"),
    (r"py:class", r"poolhouse\._typing\..*|poolhouse\.event\._F"),
    (r"py:class", r"(Async)?(Creator|DialectLike)|Echo|ResetOnReturn|ConnT|_PoolT"),
    (r"py:class", r"poolhouse\._async\._acompat\.(Checkout|_S|_T)"),
    # The metrics exporters' libraries (no intersphinx either).
    (r"py:.*", r"(opentelemetry|prometheus_client)(\..*)?"),
]

exclude_patterns = ["_build"]

html_theme = "alabaster"
