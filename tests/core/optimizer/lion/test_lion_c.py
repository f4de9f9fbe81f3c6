"""The C kernel's source file: shipped as package data, warning-free, part of the build cache's key; its bfloat16
stores."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import torch

from noether.core.optimizer.lion import cpu_build
from noether.core.optimizer.lion.cpu_build import CpuKernelBuildError
from noether.core.optimizer.lion.cpu_kernel import CpuLionKernel
from noether.core.optimizer.lion.reference import _single_tensor_lion

WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Werror",
]


def _compiler_or_skip() -> str:
    try:
        return cpu_build._compiler()
    except cpu_build.CpuKernelBuildError as exc:
        pytest.skip(str(exc))


def test_the_source_is_a_file_of_the_package_and_declared_as_package_data() -> None:
    source = resources.files("noether.core.optimizer.lion").joinpath("lion.c")
    assert source.is_file()
    assert cpu_build._source() == source.read_text(encoding="utf-8")
    for name in cpu_build._FUNCTIONS.values():  # the functions cpu_build binds
        assert f"DEFINE_LION({name.removeprefix('lion_')}," in source.read_text(encoding="utf-8")
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    pyproject = Path(__file__).resolve().parents[4] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not run from a checkout")
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "lion.c" in package_data["noether.core.optimizer.lion"]


def test_the_source_compiles_without_a_single_warning(tmp_path: Path) -> None:
    cc = _compiler_or_skip()
    source = tmp_path / "lion.c"
    source.write_text(cpu_build._source(), encoding="utf-8")
    result = subprocess.run(
        [cc, *cpu_build._FLAGS, *WARNINGS, str(source), "-o", str(tmp_path / "lion.so")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_edited_source_is_built_under_a_new_cache_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _compiler_or_skip()
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(tmp_path))
    cpu_build._build()
    (first,) = tmp_path.glob("*.so")
    original = cpu_build._source()
    monkeypatch.setattr(cpu_build, "_source", lambda: original + "\n/* an edit */\n")
    cpu_build._build()
    libraries = sorted(p.name for p in tmp_path.glob("*.so"))
    assert len(libraries) == 2 and first.name in libraries
    assert len(list(tmp_path.glob("*.sha256"))) == 2  # one checksum record per cache key


# ---------------------------------------------------------------------------------------------------------------------
# bfloat16 stores: the same bits with the CPU's own conversion (AVX512-BF16) and without it


def _bf16_from_bits(bits: list[int]) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)


def _subnormal(t: torch.Tensor) -> torch.Tensor:
    return (t != 0) & (t.abs() < torch.finfo(t.dtype).smallest_normal)


def _special_inputs(n: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """Random values with, in a few 16-value blocks only, subnormals, NaNs with payloads and infinities."""
    values = torch.randn(n, generator=gen) * 4
    specials = [
        float("inf"),
        float("-inf"),
        *_bf16_from_bits([0x7FA0, 0xFFC1, 0x0001, 0x8003, 0x007F, 0x0040]).float().tolist(),  # NaNs, subnormals
    ]
    for block in (1, 5)[: n // 80]:  # the other blocks stay ordinary: the fast path
        for offset, value in enumerate(specials):
            values[block * 16 + 2 * offset] = value
    return values.to(dtype)


@pytest.fixture(scope="module")
def no_bf16_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the build without AVX512-BF16, so that it is compiled once for the module."""
    return tmp_path_factory.mktemp("no-avx512bf16")


@pytest.mark.parametrize("native_bf16", [True, False], ids=["native", "no-avx512bf16"])
@pytest.mark.parametrize(
    ("caution", "maximize", "betas"),
    [(False, False, (0.9, 0.99)), (True, False, (0.9, 0.99)), (True, True, (0.3, 0.4)), (False, True, (0.3, 0.99))],
    ids=["plain", "caution", "caution-maximize-small-betas", "maximize-small-beta1"],
)
@pytest.mark.parametrize(
    ("dtype", "m_dtype", "kahan"),
    [
        (torch.bfloat16, torch.bfloat16, False),
        (torch.bfloat16, torch.bfloat16, True),
        (torch.bfloat16, torch.float32, True),
        (torch.float32, torch.bfloat16, False),
    ],
)
def test_bfloat16_stores_give_the_reference_bits_for_every_kind_of_value(
    native_bf16: bool,
    dtype: torch.dtype,
    m_dtype: torch.dtype,
    kahan: bool,
    caution: bool,
    maximize: bool,
    betas: tuple[float, float],
    monkeypatch: pytest.MonkeyPatch,
    no_bf16_cache: Path,
) -> None:
    """Subnormal, NaN (with payloads), infinite, signed-zero and ordinary results, in vectors of 16 and a ragged tail.

    Both branches of each lerp (betas above and below 0.5), caution and maximize; the bits must be equal, zeros'
    signs included.

    Where the CPU converts float to bfloat16 itself, that instruction reads subnormals as zero and keeps NaN payloads;
    the kernel must give the reference's bits anyway (c10's rounding: NaN becomes 0x7FC0). Built once as this machine
    allows and once without the instruction.
    """
    _compiler_or_skip()
    if not native_bf16:
        monkeypatch.setattr(cpu_build, "_FLAGS", [*cpu_build._FLAGS, "-mno-avx512bf16"])
        monkeypatch.setenv("NOETHER_CACHE_DIR", str(no_bf16_cache))
        monkeypatch.setattr(cpu_build, "_LIB", None)
    try:
        kernel = CpuLionKernel(dtype, caution, m_dtype, kahan)
    except CpuKernelBuildError as exc:
        if "self-check" in str(exc):  # it built, and computes wrong bits: that is this test's failure, not a skip
            raise
        pytest.skip(f"this compiler cannot build it so: {exc}")
    gen = torch.Generator().manual_seed(3)
    # Blocks of 32 (the bfloat16 pair's widest vector step), one of 16 and a ragged tail; and 32 + 16. Each special
    # case below fills blocks of 32 of its own, so that no other value sends its block to the scalar code.
    sizes = [32 * 8 + 16 + 7, 48]
    ps = [_special_inputs(n, dtype, gen) for n in sizes]
    gs = [_special_inputs(n, dtype, gen) for n in sizes]
    # tiny momenta: their lerp with tiny gradients gives subnormal momenta to store
    ms = [(torch.randint(-3, 4, (n,), generator=gen) * 2.0**-130).to(m_dtype) for n in sizes]
    for g, m in zip(gs, ms, strict=True):
        g[32:48] = (torch.arange(16) - 8) * 2.0**-131
        m[:32] = torch.randn(32, generator=gen).to(m.dtype)  # ordinary momenta: g - m is inexact in float32
    cs = [torch.randn(n, generator=gen).to(dtype) * 2.0**-10 for n in sizes] if kahan else None
    # Two blocks with no direction (zero gradient and momentum): subnormal parameters stay subnormal after decay;
    # the smallest normal ones, in a block of their own, leave a subnormal rounding error (compensation) behind.
    ps[0][64:96] = (torch.arange(32) % 16 - 8).to(dtype) * 2.0**-130
    ps[0][96:128] = (torch.arange(32) % 16 + 8).to(dtype) * 2.0**-126
    gs[0][64:128], ms[0][64:128] = 0, 0
    if cs is not None:
        cs[0][64:128] = 0
    # Parameters at -0 with a negative direction and a positive gradient: caution drops that step, and -1 * 0 = -0
    # then turns -0 into +0 (x - (-0)); without caution the step is taken.
    ps[0][128:160], ms[0][128:160], gs[0][128:160] = -0.0, -1.0, 2.0**-10
    if cs is not None:
        cs[0][128:160] = 0
    want = [[t.clone() for t in ts] for ts in (ps, gs, ms)]
    want_cs = [c.clone() for c in cs] if cs is not None else None
    hyper = {"beta1": betas[0], "beta2": betas[1], "lr": 0.01, "weight_decay": 0.1}
    hyper |= {"caution": caution, "maximize": maximize}
    kernel.call(ps, gs, ms, sizes, kernel.scalars(hyper, dtype, torch.device("cpu")), cs)
    _single_tensor_lion(*want, **hyper, kahan_comps=want_cs)  # type: ignore[arg-type]
    got, expected = [*ps, *ms, *(cs or [])], [*want[0], *want[2], *(want_cs or [])]
    stored_bf16 = [t for t in got if t.dtype == torch.bfloat16]
    assert any(t.isnan().any() for t in stored_bf16), "precondition: NaNs are stored"
    assert any(_subnormal(t).any() for t in stored_bf16), "precondition: subnormals are stored"
    if cs is not None:
        assert _subnormal(cs[0]).any(), "precondition: subnormal compensations are stored"
    for a, b in zip(got, expected, strict=True):
        # NaN is NaN: ATen's own kernels do not agree on one NaN pattern (scalar code stores 0x7FC0, vector code 0xFFFF)
        assert torch.equal(a.isnan(), b.isnan()), (a, b)
        bits = torch.int16 if a.dtype == torch.bfloat16 else torch.int32
        assert torch.equal(a.nan_to_num(0.0).view(bits), b.nan_to_num(0.0).view(bits)), (a, b)
