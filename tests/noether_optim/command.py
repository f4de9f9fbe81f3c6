"""Run ``noether-optim`` as a user does: a separate process, judged by its exit code and what it prints."""

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's environment with ``env`` on top; a PYTHONPATH in ``env`` goes before this checkout's ``src``."""
    environment = dict(os.environ)
    paths = [(env or {}).get("PYTHONPATH"), str(SRC), environment.get("PYTHONPATH")]
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return environment


def run_command(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m noether_optim ARGS`` with this checkout's ``src`` first on the path (as the console script runs)."""
    return subprocess.run(
        [sys.executable, "-m", "noether_optim", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_environment(env),
        check=False,
        timeout=300,
    )


def run_commands(
    commands: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]], cwd: Path, parallel: int = 4
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run several commands, ``parallel`` at a time (each spends most of its time importing torch).

    Args:
        commands: name -> (arguments, extra environment).
        cwd: The working directory of every command.
        parallel: How many run at once.
    """
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {name: pool.submit(run_command, *args, cwd=cwd, env=env) for name, (args, env) in commands.items()}
        return {name: future.result() for name, future in futures.items()}
