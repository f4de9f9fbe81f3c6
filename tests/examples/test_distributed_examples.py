"""The distributed examples run as documented (torchrun, 2 CPU ranks with gloo) and reach their stated result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "distributed"

# example -> lines its last rank-0 messages must contain (each is the example's own check of its claim)
EXPECTED = {
    "ddp.py": ["ranks hold identical weights", "restored 6", "new (fresh state) 0; dropped 0"],
    "fsdp.py": ["is stored as a local shard of (32, 32) per rank"],
    "dcp.py": ["the resumed run's weights are identical to the uninterrupted run's"],
    "zero.py": ["consolidated state of 6 parameters on rank 0"],
}


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs_under_torchrun(example: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "TMPDIR": str(tmp_path),  # the examples' checkpoints go to tempfile.gettempdir()
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = subprocess.run(
        [*command, str(EXAMPLES / example)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for line in EXPECTED[example]:
        assert line in output, output[-4000:]
    if example == "dcp.py":
        # docs/distributed.md: `... dcp.py && python examples/distributed/dcp.py` resumes the sharded checkpoint
        # in a single process.
        script = [sys.executable, str(EXAMPLES / example)]
        single = subprocess.run(script, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        output = single.stdout + single.stderr
        assert single.returncode == 0, output[-4000:]
        assert "largest difference to the 2-rank run's weights 0.0e+00" in output, output[-4000:]
