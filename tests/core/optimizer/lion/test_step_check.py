"""The compiled check of a kept C-kernel decision (``step_check``): same bits as the Python checks, or it says no.

Every step test runs two optimizers side by side on clones, one with the compiled check
(``NOETHER_LION_STEP_CHECK=native``), one without (``python``), and compares every bit of parameters and state after
every step; it also counts the steps the compiled check let run, so that a test cannot pass by never using it.
"""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import torch
from torch import Tensor

from noether.core.optimizer import Lion
from noether.core.optimizer.lion import step_check
from tests.core.optimizer.lion.compiled import count_kept_runs, require_c_kernel, require_step_check


@pytest.fixture(autouse=True)
def _needs_the_compiled_check() -> None:
    require_c_kernel()
    require_step_check()


@pytest.fixture
def kept_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of groups each step ran on the compiled check."""
    return count_kept_runs(monkeypatch)


def _bits(t: Tensor) -> Tensor:
    return t.detach().view({1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


class Pair:
    """The same optimizer twice (deep copies): stepped with the compiled check, and with the Python checks only."""

    def __init__(self, opt: Lion, monkeypatch: pytest.MonkeyPatch) -> None:
        self.native, self.python = opt, copy.deepcopy(opt)
        self.monkeypatch = monkeypatch

    def params(self, opt: Lion) -> list[Tensor]:
        return [p for group in opt.param_groups for p in group["params"]]

    def set_grads(self, seed: int, none: tuple[int, ...] = ()) -> None:
        gen = torch.Generator().manual_seed(seed)
        for i, (a, b) in enumerate(zip(self.params(self.native), self.params(self.python), strict=True)):
            g = None if i in none else torch.randn(a.shape, generator=gen).to(a.dtype)
            a.grad, b.grad = g, None if g is None else g.clone()

    def step(self) -> None:
        for opt, setting in ((self.native, "native"), (self.python, "python")):
            self.monkeypatch.setenv("NOETHER_LION_STEP_CHECK", setting)
            opt.step()

    def assert_same(self) -> None:
        for a, b in zip(self.params(self.native), self.params(self.python), strict=True):
            assert torch.equal(_bits(a), _bits(b))
            state_a, state_b = self.native.state.get(a, {}), self.python.state.get(b, {})
            assert state_a.keys() == state_b.keys()
            for key, value in state_a.items():
                assert value.dtype == state_b[key].dtype, key
                assert torch.equal(_bits(value), _bits(state_b[key])), key


SHAPES = [(16, 8), (8,), (3, 5, 2), (1,), (40,)] * 8  # 40 tensors


def _params(dtype: torch.dtype, seed: int = 0, shapes: list[tuple[int, ...]] = SHAPES) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]


MODES: dict[str, tuple[torch.dtype, dict[str, Any]]] = {
    "fp32": (torch.float32, {}),
    "fp64": (torch.float64, {}),
    "bf16+kahan": (torch.bfloat16, {}),
    "bf16": (torch.bfloat16, {"kahan_sum": False}),
    "fp32+bf16m": (torch.float32, {"momentum_dtype": torch.bfloat16}),
    "bf16+fp32m": (torch.bfloat16, {"momentum_dtype": "float32"}),
    "caution": (torch.float32, {"caution": True}),
    "maximize": (torch.float32, {"maximize": True}),
    "tensor-lr": (torch.float32, {"lr": torch.tensor(0.02)}),
    "fused": (torch.float32, {"fused": True}),
    "fused-bf16": (torch.bfloat16, {"fused": True}),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_steps_on_the_compiled_check_keep_the_bits_of_the_python_checks(
    mode: str, monkeypatch: pytest.MonkeyPatch, kept_runs: list[int]
) -> None:
    dtype, options = MODES[mode]
    options = {"lr": 0.01, "weight_decay": 0.1, **options}
    # fused=True keeps single elements away from the C kernel (a compiled kernel's choice): no decision to keep there
    shapes = [s for s in SHAPES if s != (1,)] if options.get("fused") else SHAPES
    pair = Pair(Lion(_params(dtype, shapes=shapes), **options), monkeypatch)
    for step in range(4):
        pair.set_grads(seed=step)
        pair.step()
        pair.assert_same()
    assert len(kept_runs) == 3  # every step after the first


def test_two_groups_of_different_modes_run_together(monkeypatch: pytest.MonkeyPatch, kept_runs: list[int]) -> None:
    groups = [
        {"params": _params(torch.float32, seed=1)},
        {"params": _params(torch.bfloat16, seed=2), "lr": 0.003},
        {"params": _params(torch.float32, seed=3, shapes=SHAPES[:5]), "momentum_dtype": torch.bfloat16},
    ]
    pair = Pair(Lion(groups, lr=0.01, weight_decay=0.1), monkeypatch)
    for step in range(3):
        pair.set_grads(seed=step)
        pair.step()
        pair.assert_same()
    assert len(kept_runs) == 2 * 3


def _kept_pair(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype = torch.float32, **options: Any) -> Pair:
    pair = Pair(Lion(_params(dtype), lr=0.01, weight_decay=0.1, **options), monkeypatch)
    pair.set_grads(seed=0)
    pair.step()  # the decision is kept
    return pair


def _lay_out_anew(p: Tensor) -> None:
    with torch.no_grad():
        p.set_(p.detach().t().contiguous().t())  # same values and shape, transposed strides, new storage


CHANGES = {
    "param data replaced": lambda opt, ps: setattr(ps[3], "data", torch.full_like(ps[3], 0.5)),
    "param laid out anew": lambda opt, ps: _lay_out_anew(ps[0]),
    "momentum replaced": lambda opt, ps: opt.state[ps[1]].__setitem__("exp_avg", opt.state[ps[1]]["exp_avg"] * 2),
    "momentum moved": lambda opt, ps: setattr(opt.state[ps[2]]["exp_avg"], "data", torch.ones_like(ps[2])),
    "state dict of another type": lambda opt, ps: opt.state.__setitem__(
        ps[4], type("D", (dict,), {})(opt.state[ps[4]])
    ),
    "gradient missing": lambda opt, ps: setattr(ps[5], "grad", None),
    "gradient transposed": lambda opt, ps: setattr(ps[0], "grad", ps[0].grad.t().contiguous().t()),
    "gradient subclass": lambda opt, ps: setattr(ps[6], "grad", ps[6].grad.as_subclass(_Sub)),
    "parameter replaced": lambda opt, ps: opt.param_groups[0]["params"].__setitem__(
        7, torch.nn.Parameter(ps[7].detach() + 1)
    ),
    "foreach chosen": lambda opt, ps: opt.param_groups[0].__setitem__("foreach", True),
    "momentum dtype changed": lambda opt, ps: opt.param_groups[0].__setitem__("momentum_dtype", torch.bfloat16),
}


class _Sub(Tensor):
    """A tensor subclass: its gradients go to the kernels that take any tensor, never to raw pointers."""


@pytest.mark.parametrize("change", list(CHANGES))
def test_what_the_python_checks_refuse_the_compiled_check_refuses(
    change: str, monkeypatch: pytest.MonkeyPatch, kept_runs: list[int]
) -> None:
    pair = _kept_pair(monkeypatch)
    pair.set_grads(seed=1)
    for opt in (pair.native, pair.python):
        CHANGES[change](opt, pair.params(opt))
    pair.step()
    pair.assert_same()
    assert kept_runs == []  # the compiled check said no; the Python path decided
    pair.set_grads(seed=2)
    pair.step()
    pair.assert_same()


@pytest.mark.parametrize("change", ["moved", "removed", "turned off"])
def test_a_changed_compensation_is_seen(change: str, monkeypatch: pytest.MonkeyPatch, kept_runs: list[int]) -> None:
    pair = _kept_pair(monkeypatch, torch.bfloat16)
    pair.set_grads(seed=1)
    for opt in (pair.native, pair.python):
        p = pair.params(opt)[2]
        if change == "moved":
            opt.state[p]["kahan_comp"].data = torch.full_like(p, 2**-10)
        elif change == "removed":
            del opt.state[p]["kahan_comp"]
        else:
            opt.param_groups[0]["kahan_sum"] = False
    pair.step()
    pair.assert_same()
    assert kept_runs == []


def test_an_error_is_raised_before_anything_changes(monkeypatch: pytest.MonkeyPatch, kept_runs: list[int]) -> None:
    pair = _kept_pair(monkeypatch)
    opt = pair.native
    monkeypatch.setenv("NOETHER_LION_STEP_CHECK", "native")
    params = pair.params(opt)
    before = [p.detach().clone() for p in params]
    pair.set_grads(seed=1)
    params[9].grad = params[9].grad.to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    pair.set_grads(seed=1)
    opt.param_groups[0]["lr"] = float("nan")
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
    assert kept_runs == []


def test_a_bad_setting_is_an_error_before_anything_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = _kept_pair(monkeypatch)
    params = pair.params(pair.native)
    before = [p.detach().clone() for p in params]
    pair.set_grads(seed=1)
    monkeypatch.setenv("NOETHER_LION_STEP_CHECK", "fast")
    with pytest.raises(ValueError, match="NOETHER_LION_STEP_CHECK='fast'; expected 'native' or 'python'"):
        pair.native.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))


def _holds_arguments(opt: Lion) -> list[Any]:
    (group,) = opt.param_groups
    plan = opt._dispatch_caches[0][0]._plan
    assert plan is not None
    return [
        group["params"],
        list(opt.state),
        list(opt.state.values()),
        0,
        plan.params,
        plan.exp_avgs,
        plan.comps,
        plan.p_pointers.buffer_info()[0],
        plan.m_pointers.buffer_info()[0],
        0,
        plan.nbytes_array.buffer_info()[0],
        plan.dtype,
        plan.g_pointers.buffer_info()[0],
        (Tensor, torch.nn.Parameter),
    ]


def test_the_compiled_function_answers_and_refuses_bad_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = _kept_pair(monkeypatch)
    holds = step_check.load()
    assert holds is not None
    args = _holds_arguments(pair.native)
    assert holds(*args) is True
    plan = pair.native._dispatch_caches[0][0]._plan
    assert plan is not None
    assert list(plan.g_pointers) == [p.grad.data_ptr() for p in args[0]]  # written for the kernel
    for index, wrong in ((3, 1), (3, -1), (11, torch.float64), (4, args[4][:-1]), (13, (torch.nn.Parameter,))):
        bad = list(args)
        bad[index] = wrong
        assert holds(*bad) is False, index
    for index, wrong in ((0, tuple(args[0])), (11, "float32"), (13, [Tensor])):
        bad = list(args)
        bad[index] = wrong
        with pytest.raises(TypeError, match="unexpected argument types"):
            holds(*bad)
    with pytest.raises(TypeError, match="takes 14 arguments"):
        holds(*args[:-1])


@pytest.fixture
def fresh_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """``step_check`` as in a new process: nothing built, loaded or started."""
    monkeypatch.setattr(step_check, "_HOLDS", None)
    monkeypatch.setattr(step_check, "_STARTED", False)
    monkeypatch.setattr(step_check, "_FAILED", None)
    monkeypatch.setenv("NOETHER_LION_STEP_CHECK", "native")


@pytest.mark.usefixtures("fresh_module")
def test_the_build_starts_once_in_the_background_and_only_for_many_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow_load() -> None:
        calls.append(threading.current_thread().name)
        started.set()
        release.wait(10)

    monkeypatch.setattr(step_check, "load", slow_load)
    assert step_check.holds_function(step_check.MIN_TENSORS - 1) is None
    assert not started.wait(0.2) and calls == []
    assert step_check.holds_function(step_check.MIN_TENSORS) is None  # started, not waited for
    assert started.wait(10)
    assert step_check.holds_function(10_000) is None  # still building: not started again
    release.set()
    assert calls == ["noether-lion-step-check-build"]
    monkeypatch.setenv("NOETHER_LION_STEP_CHECK", "python")
    monkeypatch.setattr(step_check, "_HOLDS", lambda *args: True)
    assert step_check.holds_function(10_000) is None  # turned off even once built


@pytest.mark.usefixtures("fresh_module")
def test_a_failed_build_is_logged_once_and_steps_keep_the_python_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture, kept_runs: list[int]
) -> None:
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with caplog.at_level(logging.INFO, logger=step_check.__name__):
        assert step_check.load() is None
        assert step_check.load() is None  # not tried again
    messages = [r.getMessage() for r in caplog.records if r.name == step_check.__name__]
    assert len(messages) == 1 and "the compiled step check is unavailable" in messages[0], messages
    pair = Pair(Lion(_params(torch.float32), lr=0.01, weight_decay=0.1), monkeypatch)
    for step in range(3):
        pair.set_grads(seed=step)
        pair.step()
        pair.assert_same()
    assert kept_runs == []


def test_a_new_process_steps_on_the_check_once_its_background_build_is_ready() -> None:
    """A fresh interpreter, the library in the cache: its steps switch to the compiled check by themselves."""
    script = """
import time, torch
from noether.core.optimizer import Lion
from noether.core.optimizer.lion import dispatch
runs = []
real = dispatch.KeptStep.run
dispatch.KeptStep.run = lambda self, hyper: runs.append(1) or real(self, hyper)
params = [torch.nn.Parameter(torch.randn(8)) for _ in range(40)]
opt = Lion(params, lr=0.01)
deadline = time.monotonic() + 120
while not runs and time.monotonic() < deadline:
    for p in params:
        p.grad = torch.randn(8)
    opt.step()
    time.sleep(0.01)
print("ran" if runs else "never ran")
"""
    env = {**os.environ, "NOETHER_LION_STEP_CHECK": "native"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"


def test_a_build_still_running_at_exit_is_killed_and_leaves_no_partial_file(tmp_path: Any) -> None:
    """A short script that starts the background build must not leave an orphan compiler or a half-written file."""
    pid_file = tmp_path / "compiler.pid"
    compiler = tmp_path / "slow-c++"
    compiler.write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo slow 1.0; exit 0; fi\necho $$ > {pid_file}\n'
        'for a in "$@"; do case "$prev" in -o) : > "$a";; esac; prev="$a"; done\nsleep 60\n'
    )
    compiler.chmod(0o755)
    script = f"""
import time
from noether.core.optimizer.lion import step_check
step_check.holds_function(10_000)  # starts the build in the background
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        if open({str(pid_file)!r}).read().strip():
            break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
else:
    raise SystemExit("the compiler never started")
"""
    cache = tmp_path / "cache"
    env = {**os.environ, "CXX": str(compiler), "NOETHER_CACHE_DIR": str(cache), "NOETHER_LION_STEP_CHECK": "native"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), "the compiler outlived the process that started it"
    assert [f.name for f in cache.iterdir() if f.suffix == ".so"] == []  # its partial output removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
