"""The README: its Python snippets run (each on its own), and it reads right as the wheel's long description."""

import re
import sys
from pathlib import Path

import pytest

from tests.snippets import python_snippets, run_snippets

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_has_the_quickstart_commands_first() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1]
    first_block = re.search(r"```bash\n(.*?)```", quickstart, flags=re.DOTALL)
    assert first_block is not None
    assert first_block.group(1).strip().splitlines() == ["make demo", "make test"]


def test_readme_python_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(python_snippets(README.read_text())) >= 2
    monkeypatch.chdir(tmp_path)  # the snippets save a checkpoint into the working directory
    namespace = run_snippets(README, tmp_path)
    report = namespace["report"]
    assert tuple(report.new) == () and tuple(report.dropped) == ()  # type: ignore[attr-defined]
    names = {name for name, _ in namespace["model"].named_parameters()}  # type: ignore[attr-defined]
    assert set(report.restored) == names  # type: ignore[attr-defined]
    assert namespace["counter"].is_finished  # type: ignore[attr-defined]


REPOSITORY = "https://github.com/Emmi-AI/noether-optim"


def test_readme_links_are_absolute_for_the_wheels_long_description() -> None:
    links = re.findall(r"\]\(([^)]+)\)", README.read_text())
    assert links
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert relative == []  # PyPI shows the README without the repository around it


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_project_urls_name_the_repository() -> None:
    import tomllib

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == REPOSITORY
    assert all(url.startswith(REPOSITORY) for url in project["urls"].values())


def test_readme_says_how_long_the_first_make_demo_takes_and_make_shows_progress() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("## ", 1)[0]
    assert "35 s" in quickstart and "75 s" in quickstart
    install = (
        (README.parent / "Makefile").read_text().split("$(DEMO_STAMP): pyproject.toml Makefile", 1)[1].split("\n\n")[0]
    )
    assert "pip install" in install and "--quiet" not in install and "--progress-bar on" in install
