"""The docs theme wraps long code lines (the project's lines run to 120 characters) instead of cutting them."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_custom_stylesheet_is_loaded_and_wraps_code() -> None:
    conf = (DOCS / "conf.py").read_text()
    assert re.search(r'html_static_path = \["_static"\]', conf)
    assert re.search(r'html_css_files = \["custom.css"\]', conf)
    css = (DOCS / "_static" / "custom.css").read_text()
    assert "white-space: pre-wrap" in css and "div.body pre" in css
