"""Checks of a state dict before :meth:`Lion.load_state_dict <.optimizer.Lion.load_state_dict>` changes anything.

torch's ``Optimizer.load_state_dict`` takes a checkpoint's per-parameter state on trust: a NaN momentum, a string
where a tensor belongs or a buffer of another shape loads silently and surfaces at the next step (as NaN parameters,
or as an error after some parameters were already updated). Here the whole state is checked first; every problem is
listed, naming the parameter index (as the state dict keys it) and the state key, and nothing is loaded.

What a value must satisfy is shared with the optimizer wrapper's checks
(:func:`noether.core.optimizer.state_validation.param_state_problems`); what is Lion's own lives here: the structure
is checked as torch checks it (its messages and exception types), state under keys that name no parameter is left
alone as torch leaves it, a non-empty state must hold ``exp_avg``, and every key but ``step`` is per-element
(``exp_avg``, in any floating dtype since ``momentum_dtype`` may ask for another than the parameter's, and the
optional ``kahan_comp``), so any other tensor is held to the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from noether.core.optimizer.state_validation import param_state_problems

__all__: list[str] = []


def _lion_state_problems(index: object, state: object, param: Tensor) -> list[str]:
    """Why the saved state of one parameter cannot be loaded for ``param``; empty if it can.

    A state is a dict; an empty one is fine (the parameter starts afresh); otherwise it holds ``exp_avg``, and every
    value is a dense, finite tensor of the parameter's shape and kind of dtype (real or complex; the precision may
    differ, as torch casts it on load), except ``step``, which is a finite number >= 0.
    """
    where = f"parameter {index!r} (shape {tuple(param.shape)})"
    if isinstance(state, Mapping) and state and "exp_avg" not in state:
        return [f"{where}: its state lacks 'exp_avg' (it has {sorted(map(str, state))}); not a Lion checkpoint?"]
    return [f"{where}: {reason}" for reason in param_state_problems(state, param, all_elementwise=True)]


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
            problems.extend(_lion_state_problems(key, value, param))
    if problems:
        raise ValueError("Lion: cannot load the state dict; nothing was loaded:\n  " + "\n  ".join(problems))
