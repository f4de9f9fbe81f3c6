"""The C kernel's build cache: it loads a compiled library only from a folder and file that only this user can write."""

import os
import stat
from pathlib import Path

import pytest

from noether.core.optimizer.lion import cpu_build

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX file owners")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(folder))
    return folder


def test_default_cache_is_in_the_users_cache_folder_not_the_shared_temp_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NOETHER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cpu_build._cache_dir() == tmp_path / "xdg" / "noether_optim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cpu_build._cache_dir() == tmp_path / "home" / ".cache" / "noether_optim"


def test_a_new_cache_folder_and_library_are_private_whatever_the_umask(cache: Path) -> None:
    old = os.umask(0o002)  # group-writable files by default, as on systems with user-private groups
    try:
        cpu_build._build()
    finally:
        os.umask(old)
    (library,) = cache.iterdir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(library.stat().st_mode) == 0o700


def test_a_cache_folder_others_can_write_is_refused(cache: Path) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(
        cpu_build.CpuKernelBuildError, match=r"cache folder .*cache is writable by group or others \(mode 777\)"
    ):
        cpu_build._build()
    assert list(cache.iterdir()) == []  # nothing compiled into it, nothing loaded from it


def test_a_planted_library_is_not_loaded(cache: Path) -> None:
    cpu_build._build()
    (library,) = cache.iterdir()
    library.chmod(0o722)  # as if somebody else could have replaced it
    with pytest.raises(cpu_build.CpuKernelBuildError, match=r"kernel library .*\.so is writable by group or others"):
        cpu_build._build()


def test_a_folder_owned_by_another_user_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.mkdir(mode=0o700)
    monkeypatch.setattr(cpu_build.os, "getuid", lambda: cache.stat().st_uid + 1)
    with pytest.raises(cpu_build.CpuKernelBuildError, match=r"is owned by uid \d+, not by this user"):
        cpu_build._build()


def test_a_symlink_to_somebody_elses_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "theirs"
    target.mkdir()
    target.chmod(0o777)
    link = tmp_path / "link"
    link.symlink_to(target)
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(link))
    with pytest.raises(cpu_build.CpuKernelBuildError, match="writable by group or others"):
        cpu_build._build()
