"""Build, cache and load the C library behind :mod:`.cpu_kernel` (once per machine, in well under a second).

The library is compiled with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) and cached under
:func:`_cache_dir`, keyed by a hash of the source, the flags, the compiler and its version, and the CPU's feature
flags (``-march=native`` code runs only where it was built). Several processes may build at once: each writes its own
temporary files and renames the result into place atomically. A library is loaded only from a folder and a file that
only this user can write, as loading it runs its code in this process.
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
from pathlib import Path

import torch

__all__ = ["CpuKernelBuildError"]

_DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}
"""The library's ``lion_<name>`` functions, one per dtype."""

C_DTYPES = frozenset(_DTYPES)
"""The dtypes with a C kernel. float16 stays with the inductor kernel: gcc does not vectorize ``_Float16``
conversions without AVX512-FP16."""

_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <omp.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float bf16_load(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
INLINE uint16_t bf16_store(float f) {
    /* round to nearest even, NaN to the canonical quiet NaN (c10::BFloat16's conversion); branch-free to vectorize */
    uint32_t u; memcpy(&u, &f, 4);
    uint16_t rounded = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    uint16_t nan_mask = (uint16_t)-(int16_t)(f != f);
    return (uint16_t)((rounded & (uint16_t)~nan_mask) | (0x7FC0 & nan_mask));
}

#define ID(x) (x)

/* One call of NAME##_body per combination of its four flags, each a constant the compiler specialises on. */
#define LION_CASE(NAME, K)                                                                                     \
    case K: NAME##_body(nt, P, G, M, N, lr, dec, w1o, w2o, st, nthreads, big,                                  \
                        (K >> 3) & 1, (K >> 2) & 1, (K >> 1) & 1, K & 1); break;
#define LION_CASES(NAME)                                                                                       \
    LION_CASE(NAME, 0) LION_CASE(NAME, 1) LION_CASE(NAME, 2) LION_CASE(NAME, 3)                                \
    LION_CASE(NAME, 4) LION_CASE(NAME, 5) LION_CASE(NAME, 6) LION_CASE(NAME, 7)                                \
    LION_CASE(NAME, 8) LION_CASE(NAME, 9) LION_CASE(NAME, 10) LION_CASE(NAME, 11)                              \
    LION_CASE(NAME, 12) LION_CASE(NAME, 13) LION_CASE(NAME, 14) LION_CASE(NAME, 15)

#define DEFINE_LION(NAME, S, OT, LOAD, STORE, FMA, FABS)                                                          \
INLINE OT NAME##_round(OT v) { return LOAD(STORE(v)); }                                                       \
INLINE OT NAME##_lerp(OT a, OT b, OT w, OT wm, const int small) {                                             \
    OT diff = b - a;                                                                                           \
    return small ? FMA(w, diff, a) : FMA(-diff, wm, b);                                                        \
}                                                                                                              \
INLINE OT NAME##_step(double x) { return NAME##_round((OT)x); }                                               \
INLINE void NAME##_update(S* restrict p, const S* restrict g, S* restrict m, int64_t lo, int64_t hi, OT decay,  \
                          OT w1, OT w1m, OT w2, OT w2m, OT step, const int caution, const int maximize,          \
                          const int s1, const int s2) {                                                        \
    for (int64_t i = lo; i < hi; ++i) {                                                                        \
        OT gv = maximize ? -LOAD(g[i]) : LOAD(g[i]);                                                           \
        OT mv = LOAD(m[i]);                                                                                    \
        OT d = NAME##_round(NAME##_lerp(mv, gv, w1, w1m, s1));                                                 \
        OT u = (OT)(d > 0) - (OT)(d < 0);                                                                      \
        if (caution) { OT a = (u * gv > 0) ? (OT)1 : (OT)0; u = u * a; }                                      \
        OT pd = NAME##_round(LOAD(p[i]) * decay);                                                              \
        p[i] = STORE(pd - u * step);                                                                           \
        m[i] = STORE(NAME##_lerp(mv, gv, w2, w2m, s2));                                                        \
    }                                                                                                          \
}                                                                                                              \
INLINE int64_t NAME##_count(const S* restrict g, const S* restrict m, int64_t lo, int64_t hi, OT w1, OT w1m,    \
                            const int maximize, const int s1) {                                                \
    int64_t total = 0;                                                                                         \
    for (int64_t b = lo; b < hi; b += (1 << 20)) {                                                             \
        int64_t e = b + (1 << 20) < hi ? b + (1 << 20) : hi;                                                   \
        int32_t c = 0;                                                                                         \
        for (int64_t i = b; i < e; ++i) {                                                                      \
            OT gv = maximize ? -LOAD(g[i]) : LOAD(g[i]);                                                       \
            OT d = NAME##_round(NAME##_lerp(LOAD(m[i]), gv, w1, w1m, s1));                                     \
            c += ((d > 0) & (gv > 0)) | ((d < 0) & (gv < 0));                                                  \
        }                                                                                                      \
        total += c;                                                                                            \
    }                                                                                                          \
    return total;                                                                                              \
}                                                                                                              \
INLINE OT NAME##_caution_step(double lr, int64_t count, int64_t n) {                                          \
    double mean = (double)count / (double)(n > 0 ? n : 1);                                                     \
    if (mean < 1e-3) mean = 1e-3;                                                                              \
    return NAME##_step(lr / mean);                                                                             \
}                                                                                                              \
INLINE void NAME##_body(int64_t nt, S** P, S** G, S** M, const int64_t* N, double lr, OT decay, OT w1, OT w2,   \
                        OT step_plain, int nthreads, int64_t big, const int caution,            \
                        const int maximize, const int s1, const int s2) {                                       \
    OT w1m = (OT)1 - w1, w2m = (OT)1 - w2;                                                                     \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nthreads)")                                     \
    for (int64_t t = 0; t < nt; ++t) {                                                                         \
        int64_t n = N[t];                                                                                      \
        if (n >= big) continue;                                                                                \
        OT step = step_plain;                                                                                  \
        if (caution) step = NAME##_caution_step(lr, NAME##_count(G[t], M[t], 0, n, w1, w1m, maximize, s1), n); \
        NAME##_update(P[t], G[t], M[t], 0, n, decay, w1, w1m, w2, w2m, step, caution, maximize, s1, s2);       \
    }                                                                                                          \
    for (int64_t t = 0; t < nt; ++t) {                                                                         \
        int64_t n = N[t];                                                                                      \
        if (n < big) continue;                                                                                 \
        S* p = P[t]; const S* g = G[t]; S* m = M[t];                                                           \
        OT step = step_plain;                                                                                  \
        if (caution) {                                                                                         \
            int64_t cnt = 0;                                                                                   \
            _Pragma("omp parallel num_threads(nthreads) reduction(+:cnt)")                                     \
            {                                                                                                  \
                int nth = omp_get_num_threads(), id = omp_get_thread_num();                                    \
                cnt += NAME##_count(g, m, n * id / nth, n * (id + 1) / nth, w1, w1m, maximize, s1);            \
            }                                                                                                  \
            step = NAME##_caution_step(lr, cnt, n);                                                            \
        }                                                                                                      \
        _Pragma("omp parallel num_threads(nthreads)")                                                          \
        {                                                                                                      \
            int nth = omp_get_num_threads(), id = omp_get_thread_num();                                        \
            int64_t lo = n * id / nth, hi = n * (id + 1) / nth;                                                \
            NAME##_update(p, g, m, lo, hi, decay, w1, w1m, w2, w2m, step, caution, maximize, s1, s2);          \
        }                                                                                                      \
    }                                                                                                          \
}                                                                                                              \
void lion_##NAME(int64_t nt, S** P, S** G, S** M, const int64_t* N, double lr, double decay, double w1,          \
                 double w2, double step_plain, int caution, int maximize, int nthreads, int64_t big) {         \
    OT w1o = (OT)w1, w2o = (OT)w2;                                                                             \
    int s1 = FABS(w1o) < (OT)0.5, s2 = FABS(w2o) < (OT)0.5;                                                    \
    OT dec = (OT)decay, st = (OT)step_plain;                                                                   \
    switch (caution * 8 + maximize * 4 + s1 * 2 + s2) {                                                        \
        LION_CASES(NAME)                                                                                       \
    }                                                                                                          \
}

DEFINE_LION(f32, float, float, ID, ID, fmaf, fabsf)
DEFINE_LION(f64, double, double, ID, ID, fma, fabs)
DEFINE_LION(bf16, uint16_t, float, bf16_load, bf16_store, fmaf, fabsf)
"""

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
    key = hashlib.sha256("\0".join([_SOURCE, " ".join(_FLAGS), cc, version, _machine_tag()]).encode()).hexdigest()
    directory = _cache_dir()
    library = directory / f"lion_cpu_{key[:24]}.so"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(directory, "cache folder")
    if not library.exists():
        source = directory / f"lion_cpu_{key[:24]}.{os.getpid()}.c"
        partial = directory / f"lion_cpu_{key[:24]}.{os.getpid()}.so"
        source.write_text(_SOURCE)
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
    for name in _DTYPES.values():
        function = getattr(lib, f"lion_{name}")
        function.restype = None
        function.argtypes = [
            ctypes.c_int64,
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
