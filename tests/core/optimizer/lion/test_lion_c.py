"""The C kernel's source file: shipped as package data, warning-free, and part of the build cache's key."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from noether.core.optimizer.lion import cpu_build

WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Werror",
]


def _compiler_or_skip() -> str:
    try:
        return cpu_build._compiler()
    except cpu_build.CpuKernelBuildError as exc:
        pytest.skip(str(exc))


def test_the_source_is_a_file_of_the_package_and_declared_as_package_data() -> None:
    source = resources.files("noether.core.optimizer.lion").joinpath("lion.c")
    assert source.is_file()
    assert cpu_build._source() == source.read_text(encoding="utf-8")
    for name in cpu_build._FUNCTIONS.values():  # the functions cpu_build binds
        assert f"DEFINE_LION({name.removeprefix('lion_')}," in source.read_text(encoding="utf-8")
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    pyproject = Path(__file__).resolve().parents[4] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not run from a checkout")
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "lion.c" in package_data["noether.core.optimizer.lion"]


def test_the_source_compiles_without_a_single_warning(tmp_path: Path) -> None:
    cc = _compiler_or_skip()
    source = tmp_path / "lion.c"
    source.write_text(cpu_build._source(), encoding="utf-8")
    result = subprocess.run(
        [cc, *cpu_build._FLAGS, *WARNINGS, str(source), "-o", str(tmp_path / "lion.so")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_edited_source_is_built_under_a_new_cache_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _compiler_or_skip()
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(tmp_path))
    cpu_build._build()
    (first,) = tmp_path.glob("*.so")
    original = cpu_build._source()
    monkeypatch.setattr(cpu_build, "_source", lambda: original + "\n/* an edit */\n")
    cpu_build._build()
    libraries = sorted(p.name for p in tmp_path.glob("*.so"))
    assert len(libraries) == 2 and first.name in libraries
    assert len(list(tmp_path.glob("*.sha256"))) == 2  # one checksum record per cache key
