"""The app stands apart from the library: its own package, reachable as a command and as ``python -m``."""

import ast
from pathlib import Path

import pytest

import noether
import noether_optim
from tests.noether_optim.command import run_command

REPO = Path(__file__).resolve().parents[2]


def test_the_library_never_imports_the_app() -> None:
    offenders = []
    for path in sorted(Path(noether.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [node.module]
            offenders += [f"{path}:{node.lineno}" for name in names if name.split(".")[0] == "noether_optim"]
    assert offenders == []


def test_the_console_script_and_the_package_data_point_at_the_app() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["noether-optim"] == "noether_optim.cli.main:main"
    assert "noether_optim.*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    configs = project["tool"]["setuptools"]["package-data"]["noether_optim.demo"]
    assert configs == ["configs/*.yaml"]
    assert sorted(p.name for p in (Path(noether_optim.__file__).parent / "demo").glob(configs[0])) == [
        "burgers_adamw.yaml",
        "burgers_lion.yaml",
    ]


def test_python_dash_m_runs_the_command() -> None:
    result = run_command("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"noether-optim {noether.__version__}"
