"""Gradient norms and clipping over a mix of plain tensors and DTensors.

``torch.nn.utils.clip_grad_norm_`` needs all gradients to be of one kind: it stacks the per-tensor norms, which
fails when some are DTensors (FSDP2, tensor parallel) and others plain tensors. Here the norms are reduced per
kind first (a DTensor's partial norm is completed with ``full_tensor()``), then combined. The arithmetic follows
torch's: ``total = ||(||g_1||, ..., ||g_n||)||_2`` and ``g <- g * min(1, max_norm / (total + 1e-6))``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch

__all__ = ["GradGroups", "clip_grads_by_value_", "group_grads", "is_dtensor", "scale_grads_", "total_grad_norm"]

_DTENSOR_TYPES: tuple[type, ...] = ()
try:
    from torch.distributed.tensor import DTensor as _DTensor

    _DTENSOR_TYPES = (_DTensor,)
except ImportError:  # torch without distributed support, or torch < 2.5 (private path only)
    try:
        from torch.distributed._tensor import DTensor as _OldDTensor  # type: ignore[attr-defined]

        _DTENSOR_TYPES = (_OldDTensor,)
    except ImportError:
        pass


def is_dtensor(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor``."""
    return bool(_DTENSOR_TYPES) and isinstance(tensor, _DTENSOR_TYPES)


GradGroups = Mapping[tuple[object, ...], list[torch.Tensor]]
"""Gradients grouped by :func:`group_grads`; every function here also accepts a plain sequence of gradients."""


def group_grads(grads: Sequence[torch.Tensor]) -> dict[tuple[object, ...], list[torch.Tensor]]:
    """Group gradients so each group is one foreach call: plain ones by device and dtype, DTensors by layout.

    Group once and pass the result to several of the functions here to walk the gradient list only once.
    """
    groups: dict[tuple[object, ...], list[torch.Tensor]] = defaultdict(list)
    for grad in grads:
        key: tuple[object, ...]
        if is_dtensor(grad):
            key = ("dtensor", grad.device_mesh, tuple(grad.placements), grad.dtype)  # type: ignore[attr-defined]
        else:
            key = ("plain", grad.device, grad.dtype)
        groups[key].append(grad)
    return dict(groups)


def _grouped(grads: Sequence[torch.Tensor] | GradGroups) -> GradGroups:
    return grads if isinstance(grads, Mapping) else group_grads(grads)


def total_grad_norm(grads: Sequence[torch.Tensor] | GradGroups) -> torch.Tensor:
    """The L2 norm of all ``grads`` together, as a float32 plain tensor on the first gradient's device.

    Non-finite gradients give a non-finite norm (that is how callers detect them). An empty list gives 0.
    """
    groups = _grouped(grads)
    if not groups:
        return torch.zeros(())
    device = next(iter(groups.values()))[0].device
    partial_norms = []
    for key, group in groups.items():
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(group)).float(), 2.0)
        if key[0] == "dtensor":
            norm = norm.full_tensor()  # type: ignore[attr-defined]
        partial_norms.append(norm.to(device))
    total: torch.Tensor = (
        partial_norms[0] if len(partial_norms) == 1 else torch.linalg.vector_norm(torch.stack(partial_norms), 2.0)
    )
    return total


def clip_grads_by_value_(grads: Sequence[torch.Tensor] | GradGroups, clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    for group in _grouped(grads).values():
        torch._foreach_clamp_min_(group, -clip_value)
        torch._foreach_clamp_max_(group, clip_value)


def scale_grads_(grads: Sequence[torch.Tensor] | GradGroups, max_norm: float, total_norm: torch.Tensor) -> None:
    """Rescale ``grads`` in place so their total norm is at most ``max_norm`` (torch's ``clip_grad_norm_`` rule).

    Args:
        grads: The gradients (or :func:`group_grads` of them).
        max_norm: The norm bound.
        total_norm: Their current total norm, from :func:`total_grad_norm`.
    """
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for key, group in _grouped(grads).items():
        coef = clip_coef.to(group[0].device)
        if key[0] == "dtensor":
            # A plain tensor factor is not accepted by every DTensor op; a Python scalar always is.
            factor = float(coef)
            for grad in group:
                grad.mul_(factor)
        else:
            torch._foreach_mul_(group, coef)
