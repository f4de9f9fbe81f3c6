"""The hand-written API pages document every public name (they are not generated, so they must not fall behind)."""

import importlib
import re
from pathlib import Path

from tests.test_public_api import PUBLIC

API = Path(__file__).resolve().parents[2] / "docs" / "api"
PACKAGES = [
    "noether.core.optimizer", "noether.core.optimizer.param_group_modifiers", "noether.core.schemas",
    "noether.core.schedules", "noether.core.factory", "noether.core.utils.training", "noether.core.utils.torch",
    "noether.core.utils.logging",
]  # fmt: skip


def _documented() -> set[str]:
    """The last dotted part of every ``.. auto<kind>:: name`` on the API pages."""
    text = "\n".join(page.read_text() for page in API.glob("*.rst"))
    return {
        match.rpartition(".")[2]
        for match in re.findall(r"^\.\. auto(?:class|function|data|exception):: (\S+)", text, re.M)
    }


def _public_names() -> set[str]:
    exported = {name for package in PACKAGES for name in importlib.import_module(package).__all__}
    return exported | {name for names in PUBLIC.values() for name in names}


def test_every_public_name_is_on_an_api_page() -> None:
    missing = sorted(_public_names() - _documented())
    assert missing == [], f"public but no docs/api/*.rst page has an auto directive for them: {missing}"


def test_every_api_page_is_in_the_toctree() -> None:
    index = (API / "index.rst").read_text()
    assert {page.stem for page in API.glob("*.rst")} - {"index"} <= set(re.findall(r"^   (\w+)$", index, re.M))
