"""Checks of a state dict before :meth:`Lion.load_state_dict <.optimizer.Lion.load_state_dict>` changes anything.

torch's ``Optimizer.load_state_dict`` takes a checkpoint's per-parameter state on trust: a NaN momentum, a string
where a tensor belongs or a buffer of another shape loads silently and surfaces at the next step (as NaN parameters,
or as an error after some parameters were already updated). Here the whole state is checked first; every problem is
listed, naming the parameter index (as the state dict keys it) and the state key, and nothing is loaded.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__: list[str] = []


def _local(t: Tensor) -> Tensor:
    """A DTensor's own shard (its values live there); any other tensor as it is."""
    to_local = getattr(t, "to_local", None)
    local = to_local() if callable(to_local) and type(t) not in (Tensor, torch.nn.Parameter) else t
    return local if isinstance(local, Tensor) else t


def _step_problem(value: object) -> str | None:
    """``step`` is not Lion's, but a checkpoint may carry one (another optimizer's, a wrapper's): finite and >= 0."""
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_meta or value.dtype.is_complex:
            return f"'step' must hold one real number, got a {value.dtype} tensor of shape {tuple(value.shape)}"
        number = float(_local(value).reshape(()).item())
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        return f"'step' must be a number or a 1-element tensor, got {type(value).__name__} {value!r:.60}"
    if not math.isfinite(number) or number < 0:
        return f"'step' must be a finite number >= 0, got {number!r}"
    return None


def _tensor_problem(key: str, value: object, param: Tensor) -> str | None:
    if not isinstance(value, Tensor):
        return f"{key!r} must be a tensor, got {type(value).__name__} {value!r:.60}"
    if value.is_meta:
        return f"{key!r} is on the meta device (it holds no values)"
    if value.layout is not torch.strided:
        return f"{key!r} has layout {value.layout}; Lion's state is dense (torch.strided)"
    if value.shape != param.shape:
        return f"{key!r} has shape {tuple(value.shape)} but the parameter has shape {tuple(param.shape)}"
    if not (value.dtype.is_floating_point or value.dtype.is_complex) or value.dtype.is_complex != param.is_complex():
        return f"{key!r} has dtype {value.dtype} but the parameter has dtype {param.dtype}"
    local = _local(value)
    if local.numel() and not bool(torch.isfinite(local).all()):
        bad = int((~torch.isfinite(local)).sum())
        return f"{key!r} has {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or inf)"
    return None


def param_state_problems(index: object, state: object, param: Tensor) -> list[str]:
    """Why the saved state of one parameter cannot be loaded for ``param``; empty if it can.

    A state is a dict; an empty one is fine (the parameter starts afresh); otherwise it holds ``exp_avg``, and every
    value is a dense, finite tensor of the parameter's shape and kind of dtype (real or complex; the precision may
    differ, as torch casts it on load), except ``step``, which is a finite number >= 0.
    """
    where = f"parameter {index!r} (shape {tuple(param.shape)})"
    if not isinstance(state, Mapping):
        return [f"{where}: its state must be a dict of key -> tensor, got {type(state).__name__} {state!r:.60}"]
    if state and "exp_avg" not in state:
        return [f"{where}: its state lacks 'exp_avg' (it has {sorted(map(str, state))}); not a Lion checkpoint?"]
    problems = []
    for key, value in state.items():
        reason = _step_problem(value) if key == "step" else _tensor_problem(str(key), value, param)
        if reason is not None:
            problems.append(f"{where}: state {reason}")
    return problems


def check_state_dict(param_groups: Sequence[Mapping[str, Any]], state_dict: Any) -> None:
    """Raise unless ``state_dict`` can be loaded, whole, into an optimizer with ``param_groups``.

    The structure is checked as torch checks it (same messages and exception types: the number of groups and of
    parameters per group), then the state of every parameter the saved groups map to one of ours. State under keys
    that name no parameter (torch keeps those as they are, e.g. what a load post-hook stored) is not checked.

    Raises:
        ValueError: Naming every offending parameter index and state key; nothing was loaded.
    """
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError("Lion: a state dict must be a dict with the keys 'state' and 'param_groups'")
    saved_groups = state_dict["param_groups"]
    state = state_dict["state"]
    if not isinstance(saved_groups, Sequence) or not all(
        isinstance(g, Mapping) and isinstance(g.get("params"), Sequence) for g in saved_groups
    ):
        raise ValueError("Lion: the state dict's 'param_groups' must be a list of dicts, each with a 'params' list")
    if not isinstance(state, Mapping):
        raise ValueError(f"Lion: the state dict's 'state' must be a dict, got {type(state).__name__}")
    if len(saved_groups) != len(param_groups):
        raise ValueError("loaded state dict has a different number of parameter groups")
    if any(len(g["params"]) != len(s["params"]) for g, s in zip(param_groups, saved_groups, strict=True)):
        raise ValueError(
            "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
        )
    id_to_param = {
        saved: param
        for group, saved_group in zip(param_groups, saved_groups, strict=True)
        for saved, param in zip(saved_group["params"], group["params"], strict=True)
    }
    problems = []
    for key, value in state.items():
        param = id_to_param.get(key)
        if param is not None:
            problems.extend(param_state_problems(key, value, param))
    if problems:
        raise ValueError("Lion: cannot load the state dict; nothing was loaded:\n  " + "\n  ".join(problems))
