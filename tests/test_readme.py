"""The README's Python snippets run, in order, in one namespace: documentation that cannot rot."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_the_quickstart_commands_first() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1]
    first_block = re.search(r"```bash\n(.*?)```", quickstart, flags=re.DOTALL)
    assert first_block is not None
    assert first_block.group(1).strip().splitlines() == ["make demo", "make test"]


def test_readme_python_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the snippets save a checkpoint into the working directory
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    report = namespace["report"]
    assert tuple(report.new) == () and tuple(report.dropped) == ()  # type: ignore[attr-defined]
    names = {name for name, _ in namespace["model"].named_parameters()}  # type: ignore[attr-defined]
    assert set(report.restored) == names  # type: ignore[attr-defined]
    assert namespace["counter"].is_finished  # type: ignore[attr-defined]
