"""Sphinx configuration: Markdown guides (MyST) plus an API reference generated from the Google-style docstrings.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (``make docs``). Everything is local: no
intersphinx, no downloads. The schedule plots are drawn during the build by ``_ext/schedule_plots.py``.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from pydantic import BaseModel

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent / "src"), str(DOCS / "_ext")]  # the checkout's package, and the local extension

import noether  # noqa: E402 (after the path setup above)

project = "noether-optim"
author = "noether-optim developers"
copyright = "noether-optim developers, Apache-2.0"
release = noether.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "schedule_plots",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "**/.pytest_cache"]

# MyST: "#testing"-style links to headings inside and across pages, and `{directive}` fences.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# autodoc: the layout of the original's API page (signature without types; parameters with their types and
# descriptions; return types), members in source order.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autoclass_content = "both"  # the class docstring, then the constructor's Args (Lion documents them on __init__)
autodoc_default_options = {
    "show-inheritance": True,
    # pydantic's machinery, not the configs' API (their fields are listed, as attributes).
    "exclude-members": "model_config, model_post_init, model_fields, model_computed_fields",
}
# Show the alias, not its expansion (a union of every schedule config with pydantic's discriminator machinery).
autodoc_type_aliases = {"AnyScheduleConfig": "noether.core.schemas.AnyScheduleConfig"}
autosummary_generate = False  # the API pages are written by hand; autosummary only draws the summary tables

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = True
napoleon_attr_annotations = True

html_theme = "alabaster"
html_title = "noether-optim"
html_theme_options = {
    "description": "Lion, an OptimizerWrapper, param-group modifiers and schedules for PyTorch",
    "fixed_sidebar": True,
    "page_width": "1200px",
    "sidebar_width": "260px",
}
html_static_path = ["_static"]
html_css_files = ["custom.css"]  # wraps code lines longer than the text column instead of cutting them


def _drop_pydantic_init_doc(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Remove pydantic's generic ``BaseModel.__init__`` docstring, which ``autoclass_content = "both"`` appends."""
    if what != "class" or not (isinstance(obj, type) and issubclass(obj, BaseModel)):
        return
    generic = inspect.cleandoc(BaseModel.__init__.__doc__ or "").splitlines()
    for start in range(len(lines) - len(generic) + 1):
        if lines[start : start + len(generic)] == generic:
            del lines[start : start + len(generic)]
            return


def _drop_noise(app: Any, doctree: nodes.document) -> None:
    """Drop two generated lines that say nothing.

    "alias of Annotated[...]" under a type alias (pydantic's validator machinery, a screen long), and "Bases: object"
    (the original's API page lists real bases only).
    """
    for paragraph in list(doctree.findall(nodes.paragraph)):
        text = paragraph.astext().strip()
        if text.startswith("alias of Annotated[") or text == "Bases: object":
            paragraph.parent.remove(paragraph)


def setup(app: Any) -> None:
    """Register the docstring hooks above."""
    app.connect("autodoc-process-docstring", _drop_pydantic_init_doc)
    app.connect("doctree-read", _drop_noise)
