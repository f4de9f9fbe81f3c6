"""A compiled check that a group's kept C-kernel decision still holds: the fixed cost of a step, in one pass.

On a model of hundreds of tensors the C kernel's update is no longer most of a CPU step: before it runs, the optimizer
reads every ``.grad`` and checks, for every tensor, what the kernel's raw pointers rely on (:class:`.DispatchCache`
lists it: identity, data pointers, byte sizes, layouts, dtypes, types). In Python that is a dozen passes over the
tensors, each reading every tensor's metadata through torch's Python bindings: about 2.5 us per parameter once
the update has pushed that metadata out of the CPU caches, 0.6-0.9 ms of a 2.4 ms step on 292 tensors, the same in
every precision mode, so it caps how much a 16-bit step can save. ``step_check.cpp`` runs the same checks in one
pass of compiled code (0.02 ms there with the metadata in the caches, 0.12 ms without).

It is an accelerator, never a second source of truth: it answers "holds" only where the Python checks would, anything
else (including every error case) is "does not hold", and then the optimizer runs its Python checks, which raise the
proper error or decide again. The kernel and its arguments are the same either way, so no bit of a step depends on
whether the check is compiled.

Building it takes a C++ compiler, torch's C++ headers (shipped in torch's wheels) and Python's headers, and about 10 s
of one core: so it is built once per machine and torch version, in a background thread, only when a kept decision
covers at least :data:`MIN_TENSORS` tensors (below that the Python checks cost little), and steps use the Python
checks until it is ready. It is cached like the C kernel (:mod:`.cpu_build`: private folder, verified checksum,
killed after ``NOETHER_CC_TIMEOUT``). Where it cannot be built, the build logs why once at INFO and steps keep the
Python checks. ``NOETHER_LION_STEP_CHECK=python`` turns it off.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import sysconfig
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import ModuleType

import torch

from .cpu_build import CpuKernelBuildError, _check_private, cached_build, cxx_compiler

__all__ = ["MIN_TENSORS", "HoldsFunction", "holds_function", "load"]

logger = logging.getLogger(__name__)

MIN_TENSORS = 32
"""A kept decision over fewer tensors never starts the build (their Python checks cost a few microseconds)."""

_SOURCE_FILE = "step_check.cpp"
_MODULE_NAME = "noether_lion_step_check"

HoldsFunction = Callable[..., bool]
"""``holds(params, keys, values, offset, plan_params, plan_exp_avgs, plan_comps, p_ptrs, m_ptrs, c_ptrs, nbytes,
dtype, out, plain_types) -> bool`` (see ``step_check.cpp``)."""


def _setting() -> str:
    """``$NOETHER_LION_STEP_CHECK``: ``native`` (the default: compiled where it builds) or ``python``.

    Raises:
        ValueError: Any other value (at the first step that would use it, before anything is updated).
    """
    value = os.environ.get("NOETHER_LION_STEP_CHECK", "native")
    if value not in ("native", "python"):
        raise ValueError(f"NOETHER_LION_STEP_CHECK={value!r}; expected 'native' or 'python'")
    return value


def _flags() -> list[str]:
    """Compile and link flags for a CPython extension module against this process's torch."""
    torch_dir = Path(torch.__file__).resolve().parent
    include, lib = torch_dir / "include", torch_dir / "lib"
    if not (include / "torch" / "csrc" / "autograd" / "python_variable.h").is_file():
        raise CpuKernelBuildError(f"torch's C++ headers are not installed (no {include}/torch/csrc)")
    python_include = sysconfig.get_paths()["include"]
    if not (Path(python_include) / "Python.h").is_file():
        raise CpuKernelBuildError(f"Python's C headers are not installed (no {python_include}/Python.h)")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [
        "-O2",
        "-std=c++20",
        "-shared",
        "-fPIC",
        "-w",  # torch's headers warn under some compilers; the build log is not the place to read them
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        f"-I{include}",
        f"-I{python_include}",
        f"-L{lib}",
        f"-Wl,-rpath,{lib}",
        # The key of the cache holds the flags: this names the torch build the module is compiled against.
        f"-DNOETHER_TORCH_VERSION={torch.__version__}",
    ]


_LIBS = ("-ltorch_python", "-ltorch_cpu", "-lc10")


def _build_and_import() -> ModuleType:
    source = resources.files(__package__).joinpath(_SOURCE_FILE).read_text(encoding="utf-8")
    library = cached_build(
        "lion_step_check",
        cxx_compiler(),
        "c++",
        _flags(),
        source,
        f"the step check ({_SOURCE_FILE})",
        f"against torch {torch.__version__}: once per machine and torch version, as models of many tensors step "
        "faster with it",
        _LIBS,
    )
    _check_private(library, "step check library")
    spec = importlib.util.spec_from_file_location(
        _MODULE_NAME, library, loader=importlib.machinery.ExtensionFileLoader(_MODULE_NAME, str(library))
    )
    if spec is None or spec.loader is None:  # pragma: no cover - a file location always gives a spec
        raise CpuKernelBuildError(f"cannot import {library}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LOCK = threading.Lock()
_HOLDS: HoldsFunction | None = None
_STARTED = False
_FAILED: str | None = None


def load() -> HoldsFunction | None:
    """Build (or load from the cache) and return the compiled check now; None, after logging why, where it cannot.

    Blocks for the build; :func:`holds_function` is the non-blocking way steps use.
    """
    global _HOLDS, _FAILED
    with _LOCK:
        if _HOLDS is not None or _FAILED is not None:
            return _HOLDS
        try:
            module = _build_and_import()
        except (CpuKernelBuildError, OSError, ImportError) as exc:
            _FAILED = str(exc)
            logger.info("Lion: the compiled step check is unavailable (%s); steps keep the Python checks", exc)
            return None
        _HOLDS = module.holds
        return _HOLDS


def holds_function(n_tensors: int) -> HoldsFunction | None:
    """The compiled check if it is ready; else None, having started its build in the background if it is worth it.

    ``n_tensors``: how many tensors the caller's kept decision covers (the build starts from :data:`MIN_TENSORS`).

    Raises:
        ValueError: ``$NOETHER_LION_STEP_CHECK`` is neither ``native`` nor ``python``.
    """
    global _STARTED
    if _setting() == "python":
        return None
    if _HOLDS is not None:
        return _HOLDS
    if _STARTED or n_tensors < MIN_TENSORS or sys.platform == "win32":
        return None
    with _LOCK:
        if _STARTED:
            return None
        _STARTED = True
    threading.Thread(target=load, name="noether-lion-step-check-build", daemon=True).start()
    return None
