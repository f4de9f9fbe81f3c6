"""The ``Lion`` optimizer class: hyperparameter checks, per-parameter state and ``step``.

``step`` hands each group's tensors to the dispatcher (:mod:`.dispatch`). The math is in :mod:`.reference`.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from noether.core.optimizer.lion.dispatch import DispatchCache, _dispatch
from noether.core.optimizer.lion.reference import LrT
from noether.core.optimizer.lion.validation import _check_group_options, _check_sparse

__all__ = ["Lion"]


_GRAD = operator.attrgetter("grad")
_EXP_AVG = operator.itemgetter("exp_avg")


def _with_grads(group_params: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """The parameters that have a gradient, and their gradients (list-wide C-level passes, no per-tensor Python)."""
    grads = list(map(_GRAD, group_params))
    if not any(map(operator.is_, grads, itertools.repeat(None))):
        return list(group_params), grads
    keep = [i for i, g in enumerate(grads) if g is not None]
    return [group_params[i] for i in keep], [grads[i] for i in keep]


def _storage_ptr(t: Tensor) -> int:
    """Address of ``t``'s storage; a DTensor owns none (asking raises), so that of its local shard."""
    to_local = getattr(t, "to_local", None)
    local = to_local() if callable(to_local) and type(t) not in (Tensor, torch.nn.Parameter) else t
    return int(local.untyped_storage().data_ptr())


class Lion(Optimizer):
    """Implements Lion algorithm (sign of an interpolated momentum, decoupled weight decay, optional caution).

    State per parameter: ``exp_avg`` only (no step counter). Every hyperparameter is read from the group at every
    step, so schedules take effect immediately. See ``docs/lion.md``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: LrT,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        caution: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        *,
        fused: bool | None = None,
    ) -> None:
        """Initialize the hyperparameters.

        Args:
            params: Iterable of parameters to optimize or dicts defining parameter groups.
            lr: Learning rate: a finite number >= 0, or a 1-element tensor (changing its value never makes
                ``torch.compile`` recompile the step).
            betas: Coefficients used for the update direction and for the running average of the gradient.
            weight_decay: Decoupled weight decay coefficient, finite and >= 0.
            caution: Apply caution: zero the update where its sign disagrees with the gradient.
            maximize: Maximize the objective instead of minimizing it.
            foreach: True: blocked foreach kernel; False: single-tensor kernel; None (with ``fused`` None): on CPU
                the C kernel of ``fused=True`` where it applies and builds (once per machine), else the blocked foreach
                kernel; same bits either way (see ``docs/lion.md``).
            fused: True: the fused kernel (the C kernel on CPU, a compiled one elsewhere); False: never a compiled
                kernel. Exclusive with ``foreach``.

        Raises:
            ValueError: On any invalid hyperparameter or integer parameter, naming it.
        """
        defaults = {
            "lr": lr,
            "betas": betas,
            "weight_decay": weight_decay,
            "caution": caution,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
        }
        _check_group_options(defaults)
        super().__init__(params, defaults)
        self._dispatch_caches: list[DispatchCache] = []
        """One per parameter group: the dispatcher's decision of which kernel serves it, kept between steps."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate the group (its hyperparameters and parameter dtypes) before adding it; see the base class."""
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("Lion: parameter groups must be ordered sequences, not sets")
        else:
            params = list(params)
        where = f" (param group {len(self.param_groups)})"
        options = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        _check_group_options(options, where)
        for index, entry in enumerate(params):
            # torch also accepts (name, tensor) pairs.
            p = entry[1] if isinstance(entry, tuple) and len(entry) == 2 else entry
            if isinstance(p, Tensor) and not (p.is_floating_point() or p.is_complex()):
                raise ValueError(
                    f"Lion: invalid params{where}: parameter {index} has dtype {p.dtype}; "
                    "only floating-point and complex parameters can be optimized"
                )
        super().add_param_group({**param_group, "params": params})

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._dispatch_caches = []  # not pickled (torch pickles defaults, state and groups): decided again
        for group in self.param_groups:
            group.setdefault("caution", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict; checks ``exp_avg`` shapes first and never aliases the given dict's tensors."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) == len(self.param_groups):
            saved_ids = [i for g in saved_groups for i in g["params"]]
            params = [p for g in self.param_groups for p in g["params"]]
            id_to_param = dict(zip(saved_ids, params, strict=False))
            for key, value in state_dict["state"].items():
                exp_avg = value.get("exp_avg") if isinstance(value, dict) else None
                param = id_to_param.get(key)
                if isinstance(exp_avg, Tensor) and param is not None and exp_avg.shape != param.shape:
                    raise ValueError(
                        f"Lion: cannot load state of parameter {key}: exp_avg has shape {tuple(exp_avg.shape)} "
                        f"but the parameter has shape {tuple(param.shape)}"
                    )
        given = {
            _storage_ptr(t)
            for value in state_dict["state"].values()
            if isinstance(value, dict)
            for t in value.values()
            if isinstance(t, Tensor)
        }
        super().load_state_dict(state_dict)
        for param_state in self.state.values():
            for key, value in param_state.items():
                if isinstance(value, Tensor) and (value.numel() == 0 or _storage_ptr(value) in given):
                    param_state[key] = value.clone(memory_format=torch.preserve_format)
        for cache in self._dispatch_caches:  # new state tensors (and groups): every group is decided again
            cache.clear()

    def _init_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]
    ) -> None:
        """Append the group's parameters that have a gradient, their gradients and their ``exp_avg`` to the lists.

        The traced step's form (torch's name and signature: ``torch.compile`` guards on the state lookups of this plain
        loop per parameter); an eager step takes :func:`_with_grads` and :meth:`_momenta` instead.
        """
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])

    def _momenta(self, params: list[Tensor]) -> list[Tensor]:
        """The ``exp_avg`` of each parameter (created, zeros, at its first step), in list-wide passes."""
        states = list(map(self.state.__getitem__, params))
        if not all(states):  # an empty dict: a parameter's first step
            for p, state in zip(params, states, strict=True):
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return list(map(_EXP_AVG, states))

    def _traced_step(self) -> None:
        """The step as ``torch.compile`` traces it: plain loops in the form it guards on without recompiling.

        A traced step never runs the C kernel (the caller's compiler fuses the reference kernel), so it needs no
        dispatch decisions.
        """
        for index, group in enumerate(self.param_groups):
            _check_group_options(group, f" (param group {index})")
            _check_sparse(p.grad for p in group["params"] if p.grad is not None)
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            self._init_group(group, params, grads, exp_avgs)
            beta1, beta2 = group["betas"]
            _dispatch(
                params,
                grads,
                exp_avgs,
                maximize=group["maximize"],
                foreach=group["foreach"],
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                caution=group["caution"],
                fused=group["fused"],
            )

    def _group_caches(self) -> list[DispatchCache]:
        caches = self._dispatch_caches
        while len(caches) < len(self.param_groups):  # groups added since (add_param_group)
            caches.append(DispatchCache())
        return caches

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Performs a single optimization step.

        Args:
            closure: A closure that reevaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or None.

        Raises:
            RuntimeError: On a sparse gradient (before any parameter or state changes).
            ValueError: On a hyperparameter made invalid since construction (e.g. by a schedule).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if torch.compiler.is_compiling():
            self._traced_step()
            return loss
        # Validate everything first, so an error leaves params and state untouched.
        with_grads = []
        for index, group in enumerate(self.param_groups):
            _check_group_options(group, f" (param group {index})")
            params, grads = _with_grads(group["params"])
            _check_sparse(grads)
            with_grads.append((params, grads))
        for group, (params, grads), cache in zip(self.param_groups, with_grads, self._group_caches(), strict=False):
            exp_avgs = self._momenta(params)
            beta1, beta2 = group["betas"]
            # Validated above for every group at once; the functional lion() would check it all again.
            _dispatch(
                params,
                grads,
                exp_avgs,
                maximize=group["maximize"],
                foreach=group["foreach"],
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                caution=group["caution"],
                fused=group["fused"],
                cache=cache,
            )
        return loss
