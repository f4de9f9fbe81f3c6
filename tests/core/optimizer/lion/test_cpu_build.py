"""The C kernel's build cache: it loads a compiled library only from a folder and file that only this user can write."""

import ctypes
import logging
import multiprocessing
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from noether.core.optimizer.lion import cpu_build

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX file owners")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with the kernel built once for this module (tests copy it instead of compiling again)."""
    folder = tmp_path_factory.mktemp("built") / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOETHER_CACHE_DIR", str(folder))
        cpu_build._build()
    return folder


@pytest.fixture
def cached(cache: Path, built: Path) -> Path:
    """``cache``, holding a copy of the module's built kernel."""
    shutil.copytree(built, cache)
    return cache


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
    (library,) = cache.glob("*.so")
    (record,) = cache.glob("*.sha256")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(library.stat().st_mode) == 0o700
    assert stat.S_IMODE(record.stat().st_mode) == 0o600


def test_a_cache_folder_others_can_write_is_refused(cache: Path) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(
        cpu_build.CpuKernelBuildError, match=r"cache folder .*cache is writable by group or others \(mode 777\)"
    ):
        cpu_build._build()
    assert list(cache.iterdir()) == []  # nothing compiled into it, nothing loaded from it


def test_a_planted_library_is_not_loaded(cached: Path) -> None:
    (library,) = cached.glob("*.so")
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


# --- a damaged cache, a compiler that hangs or fails, builds racing each other ------------------------------------


def _fake_cc(folder: Path, body: str) -> Path:
    """An executable shell script standing in for the C compiler (``--version`` answers unless ``body`` handles it)."""
    script = folder / "fake-cc"
    script.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo fake-cc 1.0; exit 0; fi\n{body}\n')
    script.chmod(0o755)
    return script


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (waiting a little: a SIGKILL is delivered asynchronously)."""
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers: it is dead but not yet reaped by its new parent (init, or a subreaper).
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "\nState:\tZ" in status.read_text():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("hangs_in", ["--version", "build"])
def test_a_hanging_compiler_is_a_failed_build_and_is_killed_with_its_children(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hangs_in: str
) -> None:
    pids = tmp_path / "pids"
    hang = f'sleep 60 & echo $! > "{pids}"; wait'
    body = hang if hangs_in == "build" else ""
    script = _fake_cc(tmp_path, body)
    if hangs_in == "--version":
        script.write_text(f"#!/bin/sh\n{hang}\n")
    monkeypatch.setenv("CC", str(script))
    monkeypatch.setenv("NOETHER_CC_TIMEOUT", "0.5")
    what = "its version probe" if hangs_in == "--version" else "the build"
    with pytest.raises(cpu_build.CpuKernelBuildError, match=rf"did not finish {what} within 0.5 s.*NOETHER_CC_TIMEOUT"):
        cpu_build._build()
    assert _gone(int(pids.read_text())), "the compiler's child process was left running"
    assert not cache.exists() or list(cache.iterdir()) == []  # no partial file, no record


def test_a_failing_compiler_is_a_build_error_naming_it_and_leaves_nothing_behind(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = _fake_cc(tmp_path, 'echo "lion.c:1: error: out of cheese" >&2; exit 3')
    monkeypatch.setenv("CC", str(script))
    with pytest.raises(cpu_build.CpuKernelBuildError, match=r"fake-cc failed \(exit code 3\): lion.c:1: error: out"):
        cpu_build._build()
    assert list(cache.iterdir()) == []


def test_a_bad_timeout_setting_is_named(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETHER_CC_TIMEOUT", "soon")
    with pytest.raises(cpu_build.CpuKernelBuildError, match="NOETHER_CC_TIMEOUT='soon'; expected a finite number"):
        cpu_build._build()


def test_a_truncated_library_is_never_loaded_but_rebuilt(
    cached: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (library,) = cached.glob("*.so")
    intact = library.read_bytes()
    library.write_bytes(intact[: len(intact) // 3])  # as a full disk or a killed copy leaves it
    loaded: list[bytes] = []
    real = ctypes.CDLL

    def guarded_load(path: str, *args: Any, **kwargs: Any) -> ctypes.CDLL:
        # Loading the truncated file itself could kill the test process with SIGBUS: look before handing it over.
        loaded.append(Path(path).read_bytes())
        assert loaded[-1] == intact, "a truncated library was handed to the dynamic loader"
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cpu_build.ctypes, "CDLL", guarded_load)
    with caplog.at_level(logging.WARNING, logger=cpu_build.__name__):
        cpu_build._build()
    assert loaded == [intact]  # rebuilt: the same compiler gives the same bytes
    assert "is damaged" in caplog.text and "rebuilding it" in caplog.text


def test_a_damaged_checksum_record_means_rebuild(cached: Path) -> None:
    (checksum,) = cached.glob("*.sha256")
    stem = checksum.name.removesuffix(".sha256")
    good = checksum.read_text()
    for record in ["not a checksum", "0" * 64, good[:-10]]:
        checksum.write_text(record)
        assert cpu_build._cached_library(cached, stem) is None, record
    cpu_build._build()
    assert checksum.read_text() == good
    assert cpu_build._cached_library(cached, stem) is not None


def _build_in_child(barrier: Any) -> None:
    barrier.wait(timeout=60)
    cpu_build._build()


def test_processes_building_at_once_share_one_cache(cache: Path) -> None:
    context = multiprocessing.get_context("fork")  # the children inherit the imported modules: no slow start
    barrier = context.Barrier(3)
    children = [context.Process(target=_build_in_child, args=(barrier,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=240)
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert len(list(cache.glob("*.so"))) == 1 and len(list(cache.glob("*.sha256"))) == 1
    assert len(list(cache.iterdir())) == 2  # no temporary file left behind
    (checksum,) = cache.glob("*.sha256")
    assert cpu_build._cached_library(cache, checksum.name.removesuffix(".sha256")) is not None


# --- where the cache lives ----------------------------------------------------------------------------------------


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOETHER_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert cpu_build._cache_dir() == tmp_path / "home" / ".cache" / "noether_optim"


def test_a_relative_noether_cache_dir_is_refused_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOETHER_CACHE_DIR", "kernels")
    monkeypatch.setattr(cpu_build, "_WARNED_RELATIVE", set())
    with (
        pytest.warns(RuntimeWarning, match="NOETHER_CACHE_DIR='kernels' is not an absolute path"),
        pytest.raises(cpu_build.CpuKernelBuildError, match="absolute path"),
    ):
        cpu_build._build()
    assert list(tmp_path.iterdir()) == []  # nothing built where the process happened to start
    monkeypatch.setenv("NOETHER_CACHE_DIR", "~/kernels")  # ~ is expanded, as a shell would
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cpu_build._cache_dir() == tmp_path / "kernels"


def test_compiling_is_logged_once_at_info_with_what_why_and_how_long(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=cpu_build.__name__):
        cpu_build._build()
        cpu_build._build()  # loaded from the cache: nothing compiled, nothing said
    messages = [r.getMessage() for r in caplog.records if r.name == cpu_build.__name__]
    assert len(messages) == 2, messages
    assert "compiling the C kernel (lion.c" in messages[0] and "once per machine" in messages[0]
    assert re.search(r"compiled the C kernel \(lion\.c\) in \d+\.\d\d s into .*\.so", messages[1])
