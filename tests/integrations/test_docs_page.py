"""docs/integrations.md runs end to end, framework examples included, and its examples pass ``mypy --strict``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def page_code() -> str:
    return "\n\n".join(BLOCK.findall(PAGE.read_text()))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_example_of_the_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pytorch_lightning")
    pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)
    exec(compile(page_code(), str(PAGE), "exec"), {"__name__": "integrations_page"})


@pytest.mark.slow
def test_examples_pass_mypy_strict_without_the_pydantic_plugin(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    pytest.importorskip("pytorch_lightning")
    pytest.importorskip("transformers")
    example = tmp_path / "integrations_example.py"
    example.write_text(
        page_code()
        + "\n\nfrom typing_extensions import reveal_type\n\n"
        + "reveal_type(OptimizerFactory().create(config)(model))\n"
    )
    config = tmp_path / "mypy.ini"
    config.write_text(
        # torch's Tensor.backward is untyped, and the frameworks are not followed (time): neither is ours to check.
        "[mypy]\nstrict = True\nfollow_imports = silent\nuntyped_calls_exclude = torch\n"
        "[mypy-integrations_example]\ndisallow_subclassing_any = False\n"
        "[mypy-pytorch_lightning.*,transformers.*,lightning_fabric.*]\nignore_missing_imports = True\n"
        "follow_imports = skip\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(example),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(src)},
        check=False,
    )
    out = result.stdout
    assert 'Revealed type is "noether.core.optimizer.optimizer_wrapper.OptimizerWrapper"' in out, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not errors, out
