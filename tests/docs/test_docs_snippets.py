"""Every docs page's ```python blocks run, in order, one namespace per page: documentation that cannot rot."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from noether.core.factory.utils import allowed_module_prefixes, unregister_module_prefix
from noether.core.schemas.schedules import registered_schedule_configs, unregister_schedule_config
from tests.snippets import python_snippets, run_snippets

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts)
PAGES_WITH_CODE = [page for page in PAGES if python_snippets(page.read_text())]


@pytest.fixture
def isolated_registries() -> Iterator[None]:
    """Pages register module prefixes and schedule configs; forget them afterwards so pages cannot leak."""
    prefixes, configs = allowed_module_prefixes(), registered_schedule_configs()
    yield
    for prefix in set(allowed_module_prefixes()) - set(prefixes):
        unregister_module_prefix(prefix)
    for kind, config in registered_schedule_configs().items():
        if kind not in configs:
            unregister_schedule_config(config)


def test_the_pages_are_found() -> None:
    names = {page.relative_to(DOCS).as_posix() for page in PAGES_WITH_CODE}
    assert {"quickstart.md", "lion.md", "optimizer_wrapper.md", "param_groups.md", "schedules.md"} <= names


@pytest.mark.usefixtures("isolated_registries")
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda page: page.relative_to(DOCS).as_posix())
def test_page_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # snippets save checkpoints and plots into the working directory
    run_snippets(page, tmp_path)
