"""The Lion optimizer (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

A package of kernels around one reference, with data flowing one way:

* :mod:`.optimizer`: the :class:`Lion` class (hyperparameter checks, state, ``step``), which calls
* :mod:`.dispatch`: :func:`lion`, which decides which kernel serves which tensors, and calls
* the kernels, one module per backend: :mod:`.reference` (single tensor), :mod:`.foreach_kernel` (blocked foreach),
  :mod:`.cpu_kernel` (the C kernel ``lion.c``, built by :mod:`.cpu_build`) and :mod:`.compiled_kernel`
  (``torch.compile``), each computing
* the update rule stated once, with its rounding, complex and NaN semantics, in :mod:`.reference`, which the kernels'
  self-checks and the tests compare against.

Hyperparameter checks live in :mod:`.validation`.
"""

from noether.core.optimizer.lion.compiled_kernel import FusedLionCompileError
from noether.core.optimizer.lion.cpu_kernel import CpuKernelBuildError
from noether.core.optimizer.lion.dispatch import lion
from noether.core.optimizer.lion.optimizer import Lion

__all__ = ["CpuKernelBuildError", "FusedLionCompileError", "Lion", "lion"]

# The public names keep the package as their home: pickles, reprs and the API docs name
# ``noether.core.optimizer.lion.Lion``, as before the module became a package.
for _public in (CpuKernelBuildError, FusedLionCompileError, Lion, lion):
    _public.__module__ = __name__
del _public
