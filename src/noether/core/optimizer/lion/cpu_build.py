"""Build, cache and load the compiled libraries: the C kernel behind :mod:`.cpu_kernel` and :mod:`.step_check`.

The source is ``lion.c`` beside this module (package data). The library is compiled with the system C compiler
(``$CC``, else ``cc``, ``gcc`` or ``clang``) and cached under :func:`_cache_dir`, keyed by a hash of ``lion.c``, the
flags, the compiler and its version, and the CPU's feature flags (``-march=native`` code runs only where it was
built). Several processes may build at once: each writes its own temporary files and renames the result into place
atomically. A library is loaded only from a folder and a file that only this user can write, as loading it runs its
code in this process.

The cache cannot crash or hang a run:

* The library is stored under the name of its own SHA-256 (``lion_cpu_<key>-<sha>.so``) and a small record
  ``lion_cpu_<key>.sha256`` names it; both are written to temporary files and renamed into place. Before loading, the
  library's bytes are hashed and compared with its name and the record: a truncated or altered file (a full disk, a
  killed process, a bad copy) is never handed to the dynamic loader (mapping a truncated library kills the process
  with SIGBUS at its first call), it is rebuilt instead.
* Every compiler call (the version probe and the build) runs in a process group of its own and is killed, with its
  children, after ``$NOETHER_CC_TIMEOUT`` seconds (default 120): a hanging compiler is a failed build, and the caller
  falls back to a kernel that needs no compiler.
* A relative ``$XDG_CACHE_HOME`` is ignored, as the XDG Base Directory specification asks. ``$NOETHER_CACHE_DIR`` must
  be an absolute path (``~`` is expanded): a relative one is refused with a warning and nothing is built or loaded, as
  it would put (and load) compiled code wherever the process happens to start.
* Compiling is logged once at INFO level on this module's logger: what is compiled, why, and how long it took.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import logging
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
import warnings
from importlib import resources
from pathlib import Path

import torch

__all__ = ["C_DTYPES", "C_PAIRS", "CpuKernelBuildError", "cached_build", "cxx_compiler"]

logger = logging.getLogger(__name__)

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


_DEFAULT_TIMEOUT_S = 120.0
"""How long one compiler call may take before it counts as a failed build (a build takes about 8-15 s of one core)."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class CpuKernelBuildError(RuntimeError):
    """The C compiler is missing, failed or timed out, or the cache is unusable; the caller falls back."""


def _timeout() -> float:
    """Seconds one compiler call may take: ``$NOETHER_CC_TIMEOUT``, a number > 0, else 120."""
    raw = os.environ.get("NOETHER_CC_TIMEOUT", "").strip()
    if not raw:
        return _DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise CpuKernelBuildError(f"NOETHER_CC_TIMEOUT={raw!r}; expected a finite number of seconds > 0")
    return value


def _run(command: list[str], what: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a compiler command, killing it and everything it started once it outlives :func:`_timeout`.

    The command runs in a session of its own, so that a compiler driver that hangs in a child (``cc1``, ``ld``, a
    wrapper script's ``sleep``) is killed with that child, and nothing keeps the output pipes open.

    Raises:
        CpuKernelBuildError: The command timed out or could not be started.
    """
    timeout = _timeout()
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=hasattr(os, "killpg"),
        )
    except OSError as exc:
        raise CpuKernelBuildError(f"cannot run the C compiler for {what}: {exc}") from exc
    _RUNNING.add(process)
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        raise CpuKernelBuildError(
            f"the C compiler did not finish {what} within {timeout:g} s (`{' '.join(command[:1])}` hangs?); set "
            "NOETHER_CC_TIMEOUT to allow longer"
        ) from None
    finally:
        _RUNNING.discard(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


_RUNNING: set[subprocess.Popen[str]] = set()
"""Compiler calls under way (a build in a background thread may still run when the interpreter exits)."""

_PARTIALS: set[Path] = set()
"""Files of this process's builds not yet renamed into place."""


@atexit.register
def _stop_builds() -> None:
    """At exit, kill compiler calls still running and remove their partial files.

    A build in a daemon thread (:mod:`.step_check`) is not waited for at exit; without this its compiler would go on as
    an orphan and leave a partial file in the cache.
    """
    for process in list(_RUNNING):
        try:  # the group only: the thread waiting on the process sees it end (joining it here could block)
            if hasattr(os, "killpg"):
                os.killpg(process.pid, signal.SIGKILL)
            else:  # pragma: no cover - Windows
                process.kill()
        except (ProcessLookupError, PermissionError):
            pass
    for partial in list(_PARTIALS):
        partial.unlink(missing_ok=True)


def _kill(process: subprocess.Popen[str]) -> None:
    """Kill ``process`` and its process group, then reap it (its pipes may stay open in orphans: not waited for)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            process.kill()
    except ProcessLookupError:
        pass
    process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    raise CpuKernelBuildError("no C compiler found (set CC, or install gcc)")


def cxx_compiler() -> str:
    """The C++ compiler: ``$CXX``, else ``c++``, ``g++`` or ``clang++``.

    Raises:
        CpuKernelBuildError: None is found.
    """
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return candidate
    raise CpuKernelBuildError("no C++ compiler found (set CXX, or install g++)")


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


_WARNED_RELATIVE: set[str] = set()


def _cache_dir() -> Path:
    """``$NOETHER_CACHE_DIR``, else ``noether_optim`` in the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``).

    Not a predictable name in the shared temp folder: another user could create it first and plant a library there.
    A relative ``$XDG_CACHE_HOME`` is ignored (the XDG specification calls it invalid).

    Raises:
        CpuKernelBuildError: ``$NOETHER_CACHE_DIR`` is a relative path (also warned about, once per value, since the
            default path only logs a build error).
    """
    configured = os.environ.get("NOETHER_CACHE_DIR")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute():
            message = (
                f"NOETHER_CACHE_DIR={configured!r} is not an absolute path; the C kernel of Lion is neither built nor "
                "loaded (Lion uses its kernels that need no compiler). Set it to an absolute path"
            )
            if configured not in _WARNED_RELATIVE:
                _WARNED_RELATIVE.add(configured)
                warnings.warn(message, RuntimeWarning, stacklevel=2)
            raise CpuKernelBuildError(message)
        return path
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / "noether_optim"


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


def cached_build(
    name: str,
    compiler: str,
    language: str,
    flags: list[str],
    source_text: str,
    what: str,
    why: str,
    link: tuple[str, ...] = (),
) -> Path:
    """The path of a library compiled from ``source_text``, from the cache or built into it now; private and verified.

    The cache key hashes the source, the flags (``flags`` before the source, ``link`` after it: libraries to link),
    the compiler and its version, and the CPU's feature flags. ``name`` starts the cached files' names, ``what`` and
    ``why`` say in the log what is compiled and why (see :func:`_compile`).

    Raises:
        CpuKernelBuildError: The compiler is missing, fails or times out, or the cache folder is not private.
        OSError: The cache folder cannot be created or written.
    """
    version = _run([compiler, "--version"], "its version probe").stdout
    source_hash = hashlib.sha256(source_text.encode()).hexdigest()
    key_text = "\0".join([source_hash, " ".join([*flags, *link]), compiler, version, _machine_tag()])
    key = hashlib.sha256(key_text.encode()).hexdigest()
    directory = _cache_dir()
    stem = f"{name}_{key[:24]}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(directory, "cache folder")
    library = _cached_library(directory, stem)
    if library is None:
        library = _compile(compiler, language, flags, source_text, directory, stem, what, why, link)
    return library


def _build_and_load() -> ctypes.CDLL:
    library = cached_build(
        "lion_cpu",
        _compiler(),
        "c",
        _FLAGS,
        _source(),
        f"the C kernel ({_SOURCE_FILE})",
        "for this machine's CPU: once per machine, as the default CPU path and fused=True run it",
    )
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached_library(directory: Path, stem: str) -> Path | None:
    """The cached library named by the record ``<stem>.sha256``, if its bytes have that hash; else None (rebuild).

    Anything unexpected (no record, a malformed one, a missing library, a library whose bytes do not match) means
    "not cached". Only a library that passes is returned: the loader never sees a truncated or altered file.

    Raises:
        CpuKernelBuildError: The record or the library is not private to this user (see :func:`_check_private`).
    """
    record = directory / f"{stem}.sha256"
    try:
        _check_private(record, "kernel checksum")
        digest = record.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not _SHA256.fullmatch(digest):
        logger.warning("Lion: the C kernel's checksum record %s is malformed; rebuilding the kernel", record)
        return None
    library = directory / f"{stem}-{digest[:32]}.so"
    try:
        _check_private(library, "kernel library")
        actual = _sha256(library)
    except FileNotFoundError:
        return None
    if actual != digest:
        logger.warning(
            "Lion: the cached C kernel %s is damaged (its SHA-256 is %s, not %s: truncated or altered); rebuilding it",
            library,
            actual,
            digest,
        )
        return None
    return library


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by renaming a private temporary file of this process into place."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, 0o600)  # whatever the umask
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _compile(
    cc: str,
    language: str,
    flags: list[str],
    source_text: str,
    directory: Path,
    stem: str,
    what: str,
    why: str,
    link: tuple[str, ...] = (),
) -> Path:
    """Compile ``source_text`` into the cache, store it under its checksum and return its path.

    The compiler reads the source from stdin and writes to a file of this process. The library is hashed and renamed
    into place under a name holding its hash (so a concurrent build never puts other bytes under that name), then the
    checksum record is renamed into place. Nothing half-written ever carries a final name.
    """
    partial = directory / f"{stem}.{os.getpid()}.{threading.get_ident()}.so"
    _PARTIALS.add(partial)
    logger.info(
        "Lion: compiling %s with %s %s %s; later processes load it from %s",
        what,
        cc,
        " ".join([*flags, *link]),
        why,
        directory,
    )
    started = time.perf_counter()
    try:
        # The source comes on stdin: no file name of this process ends up in the library, so every build of one
        # cache key gives the same bytes.
        command = [cc, *flags, "-x", language, "-", "-o", str(partial), *link]
        result = _run(command, "the build", stdin=source_text)
        if result.returncode != 0:
            raise CpuKernelBuildError(f"{cc} failed (exit code {result.returncode}): {result.stderr.strip()[-2000:]}")
        data = partial.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        os.chmod(partial, 0o700)  # whatever the umask: _check_private refuses a group-writable library
        with open(partial, "rb+") as handle:  # on disk before its name is published
            os.fsync(handle.fileno())
        library = directory / f"{stem}-{digest[:32]}.so"
        os.replace(partial, library)  # atomic: a concurrent process sees no half-written library
        _replace_atomically(directory / f"{stem}.sha256", f"{digest}\n".encode("ascii"))
    finally:
        partial.unlink(missing_ok=True)
        _PARTIALS.discard(partial)
    logger.info("Lion: compiled %s in %.2f s into %s", what, time.perf_counter() - started, library)
    return library


_LIB: ctypes.CDLL | None = None
_LIB_LOCK = threading.Lock()


def _library() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        with _LIB_LOCK:
            if _LIB is None:
                _LIB = _build()
    return _LIB
