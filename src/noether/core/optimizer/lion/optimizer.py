"""The ``Lion`` optimizer class: hyperparameter checks, per-parameter state and ``step``.

``step`` hands each group's tensors to the dispatcher (:mod:`.dispatch`). The math is in :mod:`.reference`.
"""

from __future__ import annotations

import itertools
import operator
import warnings
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from noether.core.optimizer.lion.dispatch import DispatchCache, _dispatch
from noether.core.optimizer.lion.reference import LrT
from noether.core.optimizer.lion.state_checks import check_state_dict
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


def _check_fused_devices(params: list[Tensor], group_index: int) -> None:
    """Raise torch's error for ``fused=True`` on a device without fused kernels (e.g. meta), naming the device."""
    supported = _get_fused_kernels_supported_devices()
    for position, p in enumerate(params):
        if p.grad is not None and p.device.type not in supported:
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices: "
                f"{supported} but {p.dtype} and {p.device.type} (Lion: parameter {position} of param group "
                f"{group_index}; use fused=False there)"
            )


class Lion(Optimizer):
    """Implements Lion algorithm (sign of an interpolated momentum, decoupled weight decay, optional caution).

    State per parameter: ``exp_avg`` only (no step counter). Every hyperparameter is read from the group at every
    step, so schedules take effect immediately. See ``docs/lion.md``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: LrT = 1e-4,
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
                ``torch.compile`` recompile the step). Default 1e-4, as timm's Lion. Each step multiplies the
                parameters by ``1 - lr * weight_decay``: a group where that is <= 0 is warned about once.
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
            ValueError: On any invalid hyperparameter or integer parameter, or a parameter given twice, naming it.
        """
        self._decay_warned: set[int] = set()
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
        """Validate the group (hyperparameters, parameter dtypes, no parameter twice) before adding it.

        A parameter listed twice would be updated twice per step (by some kernels at once, racing); torch only warns.

        Raises:
            TypeError: ``params`` is a set (unordered).
            ValueError: A bad hyperparameter or dtype, or a parameter that is already in this or another group, naming
                its position (and its name, for named parameters).
        """
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("Lion: parameter groups must be ordered sequences, not sets")
        else:
            params = list(params)
        index = len(self.param_groups)
        where = f" (param group {index})"
        options = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        _check_group_options(options, where)
        seen: dict[int, int] = {}
        present = {id(p): g for g, group in enumerate(self.param_groups) for p in group["params"]}
        for position, entry in enumerate(params):
            # torch also accepts (name, tensor) pairs.
            named = isinstance(entry, tuple) and len(entry) == 2
            p = entry[1] if named else entry
            label = f"parameter {position}" + (f" ({entry[0]!r})" if named else "")
            if isinstance(p, Tensor) and not (p.is_floating_point() or p.is_complex()):
                raise ValueError(
                    f"Lion: invalid params{where}: {label} has dtype {p.dtype}; "
                    "only floating-point and complex parameters can be optimized"
                )
            if id(p) in seen:
                raise ValueError(
                    f"Lion: invalid params{where}: {label} is the same tensor as parameter {seen[id(p)]}; "
                    "refusing a parameter group with duplicate parameters (each step would update it twice)"
                )
            if id(p) in present:
                raise ValueError(
                    f"Lion: invalid params{where}: {label} is already in param group {present[id(p)]}; "
                    "some parameters appear in more than one parameter group"
                )
            seen[id(p)] = position
        super().add_param_group({**param_group, "params": params})
        self._warn_if_decay_flips(self.param_groups[-1], len(self.param_groups) - 1)

    def _warn_if_decay_flips(self, group: dict[str, Any], index: int) -> None:
        """Warn once per group where ``1 - lr * weight_decay <= 0``: each step would flip (or zero) every parameter."""
        weight_decay = group["weight_decay"]
        if not weight_decay or index in getattr(self, "_decay_warned", ()):
            return
        lr = group["lr"]
        lr_value = float(lr.detach().reshape(()).item()) if isinstance(lr, Tensor) else float(lr)
        if lr_value * weight_decay < 1.0:
            return
        if not hasattr(self, "_decay_warned"):  # unpickled from before this attribute existed
            self._decay_warned = set()
        self._decay_warned.add(index)
        name = f" {group['name']!r}" if isinstance(group.get("name"), str) else ""
        warnings.warn(
            f"Lion: param group {index}{name} has lr * weight_decay = {lr_value:g} * {weight_decay:g} = "
            f"{lr_value * weight_decay:g} >= 1; each step multiplies its parameters by 1 - lr * weight_decay = "
            f"{1.0 - lr_value * weight_decay:g}, flipping their sign (or zeroing them). Decoupled weight decay is "
            "usually 10-100x smaller than lr's reciprocal: lower weight_decay or lr",
            RuntimeWarning,
            stacklevel=3,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._dispatch_caches = []  # not pickled (torch pickles defaults, state and groups): decided again
        for group in self.param_groups:
            group.setdefault("caution", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict in torch's order, all or nothing, never aliasing the given dict's tensors.

        The load pre-hooks run first (they may repair an old state dict), then the whole state is checked before
        anything changes (torch's group and size checks, then every parameter's state: a dict with ``exp_avg``,
        dense finite tensors of the parameter's shape, see :func:`.state_checks.param_state_problems`), then it is
        loaded, then the load post-hooks run (they may store anything in ``self.state``).

        Raises:
            ValueError: The state dict does not fit this optimizer or holds bad state, naming the parameter index and
                key; nothing was changed.
        """
        state_dict = state_dict.copy()  # shallow, as torch does: a hook may change the top level freely
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        check_state_dict(self.param_groups, state_dict)
        given = {
            _storage_ptr(t)
            for value in state_dict["state"].values()
            if isinstance(value, dict)
            for t in value.values()
            if isinstance(t, Tensor)
        }
        # torch's load, with the hooks run here instead: the pre-hooks ran above, the post-hooks come after the copies.
        pre_hooks, post_hooks = self._optimizer_load_state_dict_pre_hooks, self._optimizer_load_state_dict_post_hooks
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        try:
            super().load_state_dict(state_dict)
        finally:
            self._optimizer_load_state_dict_pre_hooks = pre_hooks
            self._optimizer_load_state_dict_post_hooks = post_hooks
        for param_state in self.state.values():
            if not isinstance(param_state, dict):
                continue
            for key, value in param_state.items():
                if isinstance(value, Tensor) and (value.numel() == 0 or _storage_ptr(value) in given):
                    param_state[key] = value.clone(memory_format=torch.preserve_format)
        self._decay_warned = set()
        for cache in self._dispatch_caches:  # new state tensors (and groups): every group is decided again
            cache.clear()
        for post_hook in post_hooks.values():
            post_hook(self)

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
            if group["fused"]:
                _check_fused_devices(group["params"], index)
            with_grads.append((params, grads))
        for index, group in enumerate(self.param_groups):
            self._warn_if_decay_flips(group, index)
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
