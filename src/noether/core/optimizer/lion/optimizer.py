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

from noether.core.optimizer.lion.dispatch import DispatchCache, KeptStep, _dispatch
from noether.core.optimizer.lion.reference import LrT, _group_hyperparameters
from noether.core.optimizer.lion.state_checks import check_state_dict
from noether.core.optimizer.lion.validation import (
    _LOW_PRECISION,
    _check_group_options,
    _check_param_dtype,
    _check_sparse,
    _momentum_dtype,
    _momentum_dtype_name,
)

__all__ = ["Lion"]


_GRAD = operator.attrgetter("grad")
_EXP_AVG = operator.itemgetter("exp_avg")
_GET_EXP_AVG = operator.methodcaller("get", "exp_avg")
_GET_KAHAN_COMP = operator.methodcaller("get", "kahan_comp")
_DTYPE = operator.attrgetter("dtype")
_DEVICE_TYPE = operator.attrgetter("device.type")
_IS_CPU = operator.attrgetter("is_cpu")
_IS_CUDA = operator.attrgetter("is_cuda")


def _with_grads(group_params: list[Tensor], grads: list[Tensor | None]) -> tuple[list[Tensor], list[Tensor]]:
    """The parameters that have a gradient, and their gradients (``grads``: every parameter's ``.grad``, or None).

    List-wide C-level passes, no per-tensor Python unless some gradient is missing.
    """
    if not any(map(operator.is_, grads, itertools.repeat(None))):
        return list(group_params), grads  # type: ignore[return-value]  # no None among them
    keep = [i for i, g in enumerate(grads) if g is not None]
    return [group_params[i] for i in keep], [grads[i] for i in keep]  # type: ignore[misc]


class _StateOrder:
    """The keys and values of ``Lion.state`` in insertion order, taken once per step, to find states without hashing.

    Looking a tensor up in ``state`` calls ``Tensor.__hash__``, a Python function: 5,000 lookups cost more than a
    C kernel step of 5,000 small tensors. After a group's first step its parameters are, in order, one run of the
    state dict's keys (the groups' runs back to back), so ``states`` slices the value list at the expected offset
    and uses it only if the keys there are exactly those parameters (identity): then the slice holds the very dicts
    the lookups would return (a state dict replaced by hand keeps its key's place, and the snapshot is taken anew
    at every step). Otherwise (a first step, a parameter whose gradient came or went, state added by hand out of
    order) it looks each parameter up as before.
    """

    __slots__ = ("keys", "offset", "state", "values")

    def __init__(self, state: dict[Tensor, Any]) -> None:
        self.state = state
        self.keys = list(state)
        self.values = list(state.values())
        self.offset = 0

    def states(self, params: list[Tensor]) -> list[Any]:
        """The state dicts of ``params`` (created empty where missing, as the lookups create them)."""
        start, end = self.offset, self.offset + len(params)
        self.offset = end
        if end <= len(self.keys) and all(map(operator.is_, self.keys[start:end], params)):
            return self.values[start:end]
        return list(map(self.state.__getitem__, params))


def _routes(dtypes: tuple[torch.dtype, torch.dtype], kahan: bool, kahan_sum: bool | None, momentum_dtype: Any) -> bool:
    """Whether a group's options send parameters of a kept decision's ``dtypes`` (parameter, momentum) to it.

    Compensation exactly where ``kahan_sum`` (or, if None, the parameters' dtype) asks for it, momenta in the dtype
    ``momentum_dtype`` (a dtype, or None: the parameters') asks for.
    """
    dtype, m_dtype = dtypes
    wants_kahan = kahan_sum if kahan_sum is not None else dtype in _LOW_PRECISION
    return kahan == wants_kahan and m_dtype is (dtype if momentum_dtype is None else momentum_dtype)


def _claim_cached(
    caches: tuple[DispatchCache, DispatchCache],
    params: list[Tensor],
    states: list[dict[str, Any]],
    kahan_sum: bool | None,
    momentum_dtype: torch.dtype | None,
) -> tuple[list[Tensor], list[Tensor] | None] | None:
    """The momenta (and compensations, or None) of ``params`` if a kept dispatch decision takes them all as they are.

    One of a group's two decisions (plain, with Kahan summation) does if it was taken for exactly these parameters
    and their current state tensors (identity), and the group's options still route them there: compensation
    exactly where ``kahan_sum`` (or, if None, the parameters' dtype) asks for it, momenta in the dtype
    ``momentum_dtype`` asks for. Then the momenta need no per-tensor dtype look and no conversion: the optimizer made
    them so, and a change of dtype allocates new memory, which the dispatcher's pointer check sees.
    """
    for kahan, cache in enumerate(caches):
        dtypes = cache.dtypes
        if dtypes is None or not _routes(dtypes, bool(kahan), kahan_sum, momentum_dtype):
            continue
        # .get: a state dict replaced by hand may lack a key; its None then fails the identity check.
        exp_avgs = list(map(_GET_EXP_AVG, states))
        comps = list(map(_GET_KAHAN_COMP, states)) if kahan else None
        if cache.claim(params, exp_avgs, comps):
            return exp_avgs, comps
    return None


def _storage_ptr(t: Tensor) -> int:
    """Address of ``t``'s storage; a DTensor owns none (asking raises), so that of its local shard."""
    to_local = getattr(t, "to_local", None)
    local = to_local() if callable(to_local) and type(t) not in (Tensor, torch.nn.Parameter) else t
    return int(local.untyped_storage().data_ptr())


def _check_fused_devices(params: list[Tensor], group_index: int) -> None:
    """Raise torch's error for ``fused=True`` on a device without fused kernels (e.g. meta), naming the device."""
    supported = _get_fused_kernels_supported_devices()
    # The common cases in one C-level pass: a tensor's is_cpu / is_cuda costs a fraction of building its device.
    if ("cpu" in supported and all(map(_IS_CPU, params))) or ("cuda" in supported and all(map(_IS_CUDA, params))):
        return
    if set(supported).issuperset(map(_DEVICE_TYPE, params)):
        return
    for position, p in enumerate(params):
        if p.grad is not None and p.device.type not in supported:
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices: "
                f"{supported} but {p.dtype} and {p.device.type} (Lion: parameter {position} of param group "
                f"{group_index}; use fused=False there)"
            )


def _saved_momenta(optimizer: Optimizer, state_dict: dict[str, Any]) -> dict[Tensor, Tensor]:
    """The saved ``exp_avg`` of each real parameter whose group keeps momentum in another dtype (``momentum_dtype``).

    ``torch.optim.Optimizer.load_state_dict`` casts every floating state tensor to its parameter's dtype, which would
    narrow a float32 momentum of bfloat16 parameters; these are put back after it. A momentum saved in a dtype its
    group does not ask for is left to torch's cast, as for any optimizer.
    """
    saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if len(saved_ids) != len(params):
        return {}  # torch refuses the load with its own error
    id_to_param = dict(zip(saved_ids, params, strict=True))
    wanted = {i: _momentum_dtype(g.get("momentum_dtype")) for g in state_dict["param_groups"] for i in g["params"]}
    kept: dict[Tensor, Tensor] = {}
    for key, value in state_dict["state"].items():
        exp_avg = value.get("exp_avg") if isinstance(value, dict) else None
        param = id_to_param.get(key)
        if (
            isinstance(exp_avg, Tensor)
            and param is not None
            and param.is_floating_point()
            and exp_avg.dtype is not param.dtype
            and exp_avg.dtype is wanted.get(key)
        ):
            kept[param] = exp_avg
    return kept


class Lion(Optimizer):
    """Implements Lion algorithm (sign of an interpolated momentum, decoupled weight decay, optional caution).

    State per parameter: ``exp_avg`` (in ``momentum_dtype``), and ``kahan_comp`` (in the parameter's dtype) where
    Kahan summation is on; no step counter. Every hyperparameter is read from the group at every step, so schedules
    take effect immediately. The algorithm, its kernels and their numerics:
    https://github.com/Emmi-AI/noether-optim/blob/main/docs/lion.md; the low-precision options:
    https://github.com/Emmi-AI/noether-optim/blob/main/docs/mixed_precision.md.
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
        kahan_sum: bool | None = None,
        momentum_dtype: torch.dtype | str | None = None,
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
                kernel; same bits either way (which kernel serves what:
                https://github.com/Emmi-AI/noether-optim/blob/main/docs/lion.md).
            fused: True: the fused kernel (the C kernel on CPU, a compiled one elsewhere); False: never a compiled
                kernel. Exclusive with ``foreach``.
            kahan_sum: Kahan summation: keep what rounding each parameter update lost in a compensation buffer (state
                ``kahan_comp``, the parameter's dtype) and add it back at the next step, so that low-precision
                parameters keep learning where ``lr`` is below half their ulp. None: on for bfloat16 and float16
                parameters, off otherwise; True on another dtype is an error.
            momentum_dtype: The dtype of ``exp_avg`` (float16, bfloat16, float32 or float64, or its name); None: the
                parameter's dtype. The step computes in float32 (float64 if either is float64) whatever it is. The
                parameter groups keep its name (``"bfloat16"``), which distributed checkpoints can store.

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
            "kahan_sum": kahan_sum,
            "momentum_dtype": momentum_dtype,
        }
        _check_group_options(defaults)
        defaults["momentum_dtype"] = _momentum_dtype_name(momentum_dtype)
        super().__init__(params, defaults)
        self._dispatch_caches: list[tuple[DispatchCache, DispatchCache]] = []
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
            if isinstance(p, Tensor):
                _check_param_dtype(p, position, options, where)
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
        group = {**param_group, "params": params}
        if "momentum_dtype" in group:
            group["momentum_dtype"] = _momentum_dtype_name(group["momentum_dtype"])
        super().add_param_group(group)
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
            group.setdefault("kahan_sum", None)
            group.setdefault("momentum_dtype", None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict in torch's order, all or nothing, never aliasing the given dict's tensors.

        The load pre-hooks run first (they may repair an old state dict), then the whole state is checked before
        anything changes (torch's group and size checks, then every parameter's state: a dict with ``exp_avg``,
        dense finite tensors of the parameter's shape, see :mod:`.state_checks`), then it is loaded, then the load
        post-hooks run (they may store anything in ``self.state``).

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
        momenta = _saved_momenta(self, state_dict)
        # torch's load, with the hooks run here instead: the pre-hooks ran above, the post-hooks come after the copies.
        pre_hooks, post_hooks = self._optimizer_load_state_dict_pre_hooks, self._optimizer_load_state_dict_post_hooks
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        try:
            super().load_state_dict(state_dict)
        finally:
            self._optimizer_load_state_dict_pre_hooks = pre_hooks
            self._optimizer_load_state_dict_post_hooks = post_hooks
        for param, exp_avg in momenta.items():  # torch casts all floating state to the parameter's dtype: undo that
            self.state[param]["exp_avg"] = exp_avg.to(device=param.device, copy=True)
        for param_state in self.state.values():
            if not isinstance(param_state, dict):
                continue
            for key, value in param_state.items():
                if isinstance(value, Tensor) and (value.numel() == 0 or _storage_ptr(value) in given):
                    param_state[key] = value.clone(memory_format=torch.preserve_format)
        self._decay_warned = set()
        for pair in self._dispatch_caches:  # new state tensors (and groups): every group is decided again
            for cache in pair:
                cache.clear()
        for post_hook in post_hooks.values():
            post_hook(self)

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        kahan_params: list[Tensor],
        kahan_grads: list[Tensor],
        kahan_exp_avgs: list[Tensor],
        kahan_comps: list[Tensor],
        group_grads: list[Tensor | None] | None = None,
        state_order: _StateOrder | None = None,
        caches: tuple[DispatchCache, DispatchCache] | None = None,
    ) -> None:
        """Collect the group's parameters with gradients and their state, creating or converting state as needed.

        Parameters with Kahan summation go into the four ``kahan_*`` lists, the others into ``params``, ``grads`` and
        ``exp_avgs`` (separate lists rather than a tuple of lists: dynamo loses appends to lists inside a tuple
        argument). A parameter's first step creates its ``exp_avg`` (zeros, in ``momentum_dtype``) and, with Kahan
        summation, its ``kahan_comp`` (zeros): so a checkpoint without compensation (older, or from the original)
        starts at zero. A momentum stored in another dtype than the group's ``momentum_dtype`` is converted.

        Eager steps of groups that need no conversion and no compensation take list-wide passes (no Python loop over
        thousands of tensors); the others, and a traced step, take a plain loop, on whose state lookups
        ``torch.compile`` guards per parameter (list-wide passes would make it guard on the whole state dict, and
        recompile once state exists). An eager step passes the group's ``.grad`` list it already read
        (``group_grads``), the state dict's order (``state_order``), so neither is read again, and the group's
        dispatch decisions (``caches``): while one was taken for exactly these parameters and state tensors, the
        lists go on without a per-tensor look (see :func:`_claim_cached`).
        """
        kahan_sum, momentum_dtype = group["kahan_sum"], _momentum_dtype(group["momentum_dtype"])
        if torch.compiler.is_compiling():
            with_grad = [p for p in group["params"] if p.grad is not None]
        else:
            if group_grads is None:
                group_grads = list(map(_GRAD, group["params"]))
            with_grad, their_grads = _with_grads(group["params"], group_grads)
            if state_order is None:
                states = list(map(self.state.__getitem__, with_grad))
            else:
                states = state_order.states(with_grad)
            claimed = _claim_cached(caches, with_grad, states, kahan_sum, momentum_dtype) if caches else None
            if claimed is not None:
                momenta, comps = claimed
                if comps is None:
                    params.extend(with_grad)
                    grads.extend(their_grads)
                    exp_avgs.extend(momenta)
                else:
                    kahan_params.extend(with_grad)
                    kahan_grads.extend(their_grads)
                    kahan_exp_avgs.extend(momenta)
                    kahan_comps.extend(comps)
                return
            dtypes = list(map(_DTYPE, with_grad)) if momentum_dtype is None and kahan_sum is not True else []
            plain = momentum_dtype is None and (
                kahan_sum is False or (kahan_sum is None and set(dtypes).isdisjoint(_LOW_PRECISION))
            )
            if plain:
                if not all(states):  # an empty dict: a parameter's first step
                    for p, state in zip(with_grad, states, strict=True):
                        if len(state) == 0:
                            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                momenta = list(map(_EXP_AVG, states))
                if all(map(operator.is_, map(_DTYPE, momenta), dtypes)) and not any(
                    map(operator.contains, states, itertools.repeat("kahan_comp"))
                ):
                    params.extend(with_grad)
                    grads.extend(their_grads)
                    exp_avgs.extend(momenta)
                    return
        for p in with_grad:
            state = self.state[p]
            want = p.dtype if momentum_dtype is None or p.is_complex() else momentum_dtype
            exp_avg = state.get("exp_avg")
            if exp_avg is None:
                exp_avg = state["exp_avg"] = torch.zeros_like(p, dtype=want, memory_format=torch.preserve_format)
            elif exp_avg.dtype is not want:
                exp_avg = state["exp_avg"] = exp_avg.to(want)
            if kahan_sum if kahan_sum is not None else p.dtype in _LOW_PRECISION:
                comp = state.get("kahan_comp")
                if comp is None:
                    comp = state["kahan_comp"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                kahan_params.append(p)
                kahan_grads.append(p.grad)
                kahan_exp_avgs.append(exp_avg)
                kahan_comps.append(comp)
                continue
            state.pop("kahan_comp", None)  # turned off: a stale compensation must not return if turned on again
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(exp_avg)

    def _step_kept(self) -> bool:
        """Step every group on its kept C-kernel decision if the compiled check says each holds; else change nothing.

        The fast way through an eager step on CPU (see :mod:`.step_check`): per group, one compiled pass checks what
        the kept decision relies on, instead of the Python checks of :meth:`_init_group` and the dispatcher. Every
        group is checked, and its options validated, before any group runs: on any "no" nothing has changed and
        :meth:`step` takes its full path, which raises what it finds or decides again. The kernel and its arguments
        are the ones that path would use, so the bits are the same.
        """
        kept_steps: list[tuple[dict[str, Any], KeptStep]] = []
        keys: list[Tensor] | None = None
        values: list[Any] = []
        offset = 0
        for index, (group, caches) in enumerate(zip(self.param_groups, self._group_caches(), strict=False)):
            params = group["params"]
            found = KeptStep.find(caches, len(params), group["foreach"], group["fused"], group["caution"])
            if found is None:
                return False
            kept, kahan = found
            _check_group_options(group, f" (param group {index})")
            if not _routes(kept.dtypes, kahan, group["kahan_sum"], _momentum_dtype(group["momentum_dtype"])):
                return False
            if keys is None:  # after a group's first step, its parameters are one run of the state dict's keys
                keys, values = list(self.state), list(self.state.values())
            if not kept.check(params, keys, values, offset):
                return False
            kept_steps.append((group, kept))
            offset += len(params)
        for index, group in enumerate(self.param_groups):
            self._warn_if_decay_flips(group, index)
        for group, kept in kept_steps:
            kept.run(_group_hyperparameters(group))
        return True

    def _group_caches(self) -> list[tuple[DispatchCache, DispatchCache]]:
        """Per group, the dispatch decisions of its parameters without and with Kahan summation."""
        caches = self._dispatch_caches
        while len(caches) < len(self.param_groups):  # groups added since (add_param_group)
            caches.append((DispatchCache(), DispatchCache()))
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
        compiling = torch.compiler.is_compiling()
        if not compiling and self._step_kept():
            return loss
        # Validate everything first, so an error leaves params and state untouched.
        # Each group's .grad list, read once here and handed to _init_group (an eager step only).
        all_grads: list[list[Tensor | None] | None] = [None] * len(self.param_groups)
        for index, group in enumerate(self.param_groups):
            _check_group_options(group, f" (param group {index})")
            if compiling:  # traced as one graph, in the form torch.compile knows (a graph break here recompiles)
                _check_sparse(p.grad for p in group["params"] if p.grad is not None)
            else:
                read = all_grads[index] = list(map(_GRAD, group["params"]))
                if any(map(operator.is_, read, itertools.repeat(None))):
                    _check_sparse([g for g in read if g is not None])
                else:
                    _check_sparse(read)  # type: ignore[arg-type]  # no None among them
                if group["fused"]:
                    _check_fused_devices(group["params"], index)
        if not compiling:
            for index, group in enumerate(self.param_groups):
                self._warn_if_decay_flips(group, index)
        # A traced step never runs the C kernel (the caller's compiler fuses the reference): it needs no decisions.
        group_caches: list[tuple[DispatchCache, DispatchCache] | None] = (
            [None] * len(self.param_groups) if compiling else [*self._group_caches()]
        )
        state_order = None if compiling else _StateOrder(self.state)
        for group, caches, group_grads in zip(self.param_groups, group_caches, all_grads, strict=False):
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            kahan_params: list[Tensor] = []
            kahan_grads: list[Tensor] = []
            kahan_exp_avgs: list[Tensor] = []
            kahan_comps: list[Tensor] = []
            self._init_group(
                group,
                params,
                grads,
                exp_avgs,
                kahan_params,
                kahan_grads,
                kahan_exp_avgs,
                kahan_comps,
                group_grads,
                state_order,
                caches,
            )
            hyper = {**_group_hyperparameters(group), "foreach": group["foreach"], "fused": group["fused"]}
            # Validated above for every group at once; the functional lion() would check it all again.
            plain_cache, kahan_cache = caches if caches is not None else (None, None)
            if params or not kahan_params:
                _dispatch(params, grads, exp_avgs, **hyper, cache=plain_cache)
            if kahan_params:
                _dispatch(
                    kahan_params, kahan_grads, kahan_exp_avgs, **hyper, kahan_comps=kahan_comps, cache=kahan_cache
                )
        return loss
