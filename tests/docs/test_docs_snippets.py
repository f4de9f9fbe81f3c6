"""Every docs page's ```python blocks run, in order, one namespace per page, and its ```yaml configs validate."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from noether.core.factory.optimizer import optimizer_kwargs_for
from noether.core.factory.utils import (
    allowed_module_prefixes,
    class_constructor_from_class_path,
    unregister_module_prefix,
)
from noether.core.schemas import OptimizerConfig
from noether.core.schemas.schedules import registered_schedule_configs, unregister_schedule_config
from tests.snippets import Snippet, code_blocks, python_snippets, run_snippets

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts)
PAGES_WITH_CODE = [page for page in PAGES if python_snippets(page.read_text())]
YAML_BLOCKS = [(page, block) for page in PAGES for block in code_blocks(page.read_text(), "yaml")]


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


@pytest.mark.parametrize(
    ("page", "block"),
    YAML_BLOCKS,
    ids=[f"{page.relative_to(DOCS).as_posix()}:{block.line}" for page, block in YAML_BLOCKS],
)
def test_yaml_configs_validate(page: Path, block: Snippet) -> None:
    """A YAML block is an optimizer config, or a fragment of one (checked inside a minimal config)."""
    where = f"{page.name}:{block.line}"
    data = yaml.safe_load(block.code)
    assert isinstance(data, dict), f"{where}: a YAML block must be a mapping"
    unknown = set(data) - set(OptimizerConfig.model_fields)
    assert "kind" in data or not unknown, f"{where}: neither an optimizer config nor a fragment of one: {unknown}"
    config = OptimizerConfig.model_validate({"kind": "torch.optim.SGD", "lr": 0.1, **data})
    assert config.kind is not None
    optimizer_class = class_constructor_from_class_path(config.kind, base=torch.optim.Optimizer)
    optimizer_kwargs_for(optimizer_class, config)  # extra keys must be arguments of the optimizer
