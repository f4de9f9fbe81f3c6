"""Name-keyed optimizer checkpoints: remap a saved optimizer state onto the current parameters by name.

A checkpoint of :class:`~noether.core.optimizer.OptimizerWrapper` is torch's optimizer ``state_dict`` (``state``,
``param_groups``) plus ``param_idx_to_name``, the parameter name of every index. Loading matches parameters by
name, so adding, removing or reordering parameters, changing group settings, or wrapping the model in DDP or
``torch.compile`` keeps every state that still has a parameter.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from noether.core.optimizer.param_names import normalized_or_raw_names
from noether.core.optimizer.state_validation import state_tensor_problem

__all__ = ["LoadReport", "remap_state_by_name", "state_tensor_mismatch"]


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What :meth:`OptimizerWrapper.load_state_dict <noether.core.optimizer.OptimizerWrapper.load_state_dict>` did.

    Attributes:
        restored: Parameters found in the checkpoint; their saved state (possibly none, e.g. for a frozen
            parameter) was loaded.
        new: Current parameters the checkpoint does not know; they start with no state.
        dropped: Checkpoint parameters that no longer exist in the model; their state was discarded.
    """

    restored: tuple[str, ...]
    new: tuple[str, ...]
    dropped: tuple[str, ...]

    def __str__(self) -> str:
        def listing(names: tuple[str, ...]) -> str:
            shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
            return f"{len(names)}" + (f" [{shown}]" if names else "")

        return (
            f"optimizer state: restored {listing(self.restored)}; new (fresh state) {listing(self.new)}; "
            f"dropped {listing(self.dropped)}"
        )


def state_tensor_mismatch(param: torch.Tensor, key: str, value: torch.Tensor) -> str | None:
    """Why the saved state tensor ``value`` cannot belong to ``param``, or None if it can.

    See :func:`~noether.core.optimizer.state_validation.state_tensor_problem`: moments and momentum buffers must have
    exactly the parameter's shape (a broadcastable one would fail only at the next step), factored second moments
    must broadcast to it, and floating point and complex must not be mixed.
    """
    return state_tensor_problem(param, key, value)


def _copy_state(param: torch.Tensor, state: Mapping[str, Any]) -> dict[str, Any]:
    # Copies, never views: the caller may keep mutating the dict it loaded from.
    return {
        key: value.detach().to(device=param.device, copy=True)
        if isinstance(value, torch.Tensor)
        else copy.deepcopy(value)
        for key, value in state.items()
    }


def _checkpoint_names(raw: Any) -> dict[int, str]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"checkpoint 'param_idx_to_name' must be a dict of index -> name, got {type(raw).__name__}")
    names: dict[int, str] = {}
    for index, name in raw.items():
        try:
            names[int(index)] = str(name)
        except (TypeError, ValueError) as error:
            raise ValueError(f"checkpoint 'param_idx_to_name' has a non-integer index {index!r}") from error
    return names


def remap_state_by_name(
    checkpoint: Mapping[str, Any],
    current_names: Mapping[int, str],
    params_by_index: Mapping[int, torch.Tensor],
    *,
    strict: bool = False,
) -> tuple[dict[int, dict[str, Any]], LoadReport]:
    """Map a name-keyed checkpoint's state onto the current parameter indices.

    Args:
        checkpoint: A state dict with ``state`` and ``param_idx_to_name``.
        current_names: Current index -> parameter name.
        params_by_index: Current index -> parameter.
        strict: Raise if a parameter is new or dropped instead of reporting it.

    Returns:
        The new ``state`` (copied tensors, keyed by current index) and the :class:`LoadReport`.

    Raises:
        ValueError: A malformed checkpoint, a shape or dtype mismatch (naming the parameter), or, with ``strict``,
            new or dropped parameters. Nothing is modified in any case.
    """
    saved_names = normalized_or_raw_names(_checkpoint_names(checkpoint["param_idx_to_name"]))
    saved_state = checkpoint["state"]
    if not isinstance(saved_state, Mapping):
        raise ValueError(f"checkpoint 'state' must be a dict, got {type(saved_state).__name__}")
    unnamed = sorted(set(int(index) for index in saved_state) - set(saved_names))
    if unnamed:
        raise ValueError(f"checkpoint has state for indices {unnamed} that 'param_idx_to_name' does not name")
    if len(set(saved_names.values())) != len(saved_names):
        raise ValueError("checkpoint 'param_idx_to_name' names some parameter twice")
    saved_index_of = {name: index for index, name in saved_names.items()}
    state_of = {int(index): value for index, value in saved_state.items()}
    names_now = normalized_or_raw_names(current_names)

    new_state: dict[int, dict[str, Any]] = {}
    restored: list[str] = []
    new: list[str] = []
    problems: list[str] = []
    for index, name in names_now.items():
        saved_index = saved_index_of.get(name)
        if saved_index is None:
            new.append(current_names[index])
            continue
        restored.append(current_names[index])
        if saved_index not in state_of:
            continue
        state = state_of[saved_index]
        param = params_by_index[index]
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                reason = state_tensor_mismatch(param, key, value)
                if reason is not None:
                    problems.append(f"parameter '{current_names[index]}': {reason}")
        new_state[index] = state
    if problems:
        raise ValueError("cannot load the optimizer checkpoint; nothing was loaded:\n  " + "\n  ".join(problems))
    current_set = set(names_now.values())
    dropped = [name for name in saved_names.values() if name not in current_set]
    report = LoadReport(restored=tuple(restored), new=tuple(new), dropped=tuple(dropped))
    if strict and (report.new or report.dropped):
        raise ValueError(f"strict load: the checkpoint does not match the model's parameters ({report})")
    copied = {index: _copy_state(params_by_index[index], state) for index, state in new_state.items()}
    return copied, report
