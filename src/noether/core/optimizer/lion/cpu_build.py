"""Build, cache and load the C library behind :mod:`.cpu_kernel` (once per machine, in well under a second).

The source is ``lion.c`` beside this module (package data). The library is compiled with the system C compiler
(``$CC``, else ``cc``, ``gcc`` or ``clang``) and cached under :func:`_cache_dir`, keyed by a hash of ``lion.c``, the
flags, the compiler and its version, and the CPU's feature flags (``-march=native`` code runs only where it was
built). Several processes may build at once: each writes its own temporary files and renames the result into place
atomically. A library is loaded only from a folder and a file that only this user can write, as loading it runs its
code in this process.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import threading
from importlib import resources
from pathlib import Path

import torch

__all__ = ["C_DTYPES", "C_PAIRS", "CpuKernelBuildError"]

_NAMES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}

_FUNCTIONS = {
    (p, m): f"lion_{_NAMES[p]}_{_NAMES[m]}"
    for p, m in (
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
        (torch.bfloat16, torch.bfloat16),
        (torch.float32, torch.bfloat16),
        (torch.bfloat16, torch.float32),
    )
}
"""The library's functions, one per (parameter dtype, momentum dtype) pair."""

C_DTYPES = frozenset(p for p, m in _FUNCTIONS if p is m)
"""The parameter dtypes with a C kernel (momentum of the same dtype). float16 stays with the inductor kernel: gcc does
not vectorize ``_Float16`` conversions without AVX512-FP16."""

C_PAIRS = frozenset(_FUNCTIONS)
"""The (parameter dtype, momentum dtype) pairs with a C kernel: the same dtype, and float32 with bfloat16 either way."""

_SOURCE_FILE = "lion.c"
"""The kernel's C source, shipped beside this module as package data."""


def _source() -> str:
    """The text of ``lion.c`` (read at build time, so an edited source is rebuilt under a new cache key)."""
    return resources.files(__package__).joinpath(_SOURCE_FILE).read_text(encoding="utf-8")


_FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno", "-std=gnu11"]


class CpuKernelBuildError(RuntimeError):
    """The C compiler is missing or failed; the caller falls back to the inductor kernel."""


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    raise CpuKernelBuildError("no C compiler found (set CC, or install gcc)")


def _machine_tag() -> str:
    """What a ``-march=native`` binary depends on: the CPU's feature flags (Linux) or its model string."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _cache_dir() -> Path:
    """``$NOETHER_CACHE_DIR``, else ``noether_optim`` in the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``).

    Not a predictable name in the shared temp folder: another user could create it first and plant a library there.
    """
    configured = os.environ.get("NOETHER_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "noether_optim"


def _check_private(path: Path, what: str) -> None:
    """Refuse to load code from ``path`` unless only this user can have written it.

    The library is loaded into the process, so whoever can write the folder or the file can run code as this user.
    Symbolic links are followed: one planted by somebody else leads to a folder or file that fails the check.

    Raises:
        CpuKernelBuildError: ``path`` is owned by another user, or writable by group or others.
    """
    if not hasattr(os, "getuid"):  # no POSIX owners (Windows): nothing to compare against
        return
    info = os.stat(path)
    problem = None
    if info.st_uid != os.getuid():
        problem = f"is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    if problem:
        raise CpuKernelBuildError(
            f"the {what} {path} {problem}; refusing to load a compiled kernel from it (set NOETHER_CACHE_DIR to a "
            "folder only you can write)"
        )


def _build() -> ctypes.CDLL:
    """Compile the source (or reuse the library a previous process built on this machine) and load it."""
    try:
        return _build_and_load()
    except OSError as exc:  # an unwritable cache folder, a library the loader refuses, ...
        raise CpuKernelBuildError(f"cannot build or load the C kernel ({exc})") from exc


def _build_and_load() -> ctypes.CDLL:
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    source_text = _source()
    source_hash = hashlib.sha256(source_text.encode()).hexdigest()
    key = hashlib.sha256("\0".join([source_hash, " ".join(_FLAGS), cc, version, _machine_tag()]).encode()).hexdigest()
    directory = _cache_dir()
    library = directory / f"lion_cpu_{key[:24]}.so"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(directory, "cache folder")
    if not library.exists():
        source = directory / f"lion_cpu_{key[:24]}.{os.getpid()}.c"
        partial = directory / f"lion_cpu_{key[:24]}.{os.getpid()}.so"
        source.write_text(source_text, encoding="utf-8")
        try:
            result = subprocess.run([cc, *_FLAGS, str(source), "-o", str(partial)], capture_output=True, text=True)
            if result.returncode != 0:
                raise CpuKernelBuildError(f"{cc} failed: {result.stderr.strip()[-2000:]}")
            os.chmod(partial, 0o700)  # whatever the umask: _check_private refuses a group-writable library
            os.replace(partial, library)  # atomic: a concurrent process sees no half-written library
        finally:
            source.unlink(missing_ok=True)
            partial.unlink(missing_ok=True)
    _check_private(library, "kernel library")
    lib = ctypes.CDLL(str(library))
    pointer = ctypes.c_void_p
    for name in _FUNCTIONS.values():
        function = getattr(lib, name)
        function.restype = None
        function.argtypes = [
            ctypes.c_int64,
            pointer,
            pointer,
            pointer,
            pointer,
            pointer,
            ctypes.c_double,
            ctypes.c_double,
            ctypes.c_double,
            ctypes.c_double,
            ctypes.c_double,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int64,
        ]
    return lib


_LIB: ctypes.CDLL | None = None
_LIB_LOCK = threading.Lock()


def _library() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        with _LIB_LOCK:
            if _LIB is None:
                _LIB = _build()
    return _LIB
