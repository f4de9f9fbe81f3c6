"""docs/cli.md shows what the command really prints: each ``$ noether-optim ...`` line of its console blocks is run.

The page's YAML blocks whose first line names a file (``# bad.yaml``) are written first, so its error examples run
on the very files the page shows; ``examples/`` is reachable as in a checkout.
"""

import re
from pathlib import Path

import pytest

from tests.noether_optim.command import run_commands

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "cli.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(PAGE.read_text()) if lang == language]


def _examples() -> list[tuple[str, str]]:
    """(command line, expected output) of every ``$`` line of the page's console blocks."""
    examples = []
    for block in _blocks("console"):
        for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = chunk.partition("\n")
            examples.append((command, output))
    return examples


def test_the_page_has_error_examples() -> None:
    commands = [command for command, _ in _examples()]
    assert len(commands) >= 3 and all(command.startswith("noether-optim ") for command in commands)
    assert any("invalid config" in output for _, output in _examples())


def test_console_examples_print_what_the_page_shows(tmp_path: Path) -> None:
    for block in _blocks("yaml"):
        name = re.match(r"# ([\w.]+\.yaml)\n", block)
        if name:
            (tmp_path / name.group(1)).write_text(block)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    examples = _examples()
    # argparse wraps its usage text to the terminal width: pin it to what the page shows
    commands = {str(i): (command.split()[1:], {"COLUMNS": "80"}) for i, (command, _) in enumerate(examples)}
    results = run_commands(commands, cwd=tmp_path)
    for i, (command, expected) in enumerate(examples):
        result = results[str(i)]
        shown = "\n".join(line.rstrip() for line in (result.stdout + result.stderr).splitlines())
        assert shown == expected.rstrip("\n"), f"$ {command}"
        failed = any(line.startswith("noether-optim ") for line in expected.splitlines())
        assert (result.returncode != 0) == failed, f"$ {command}: exit code {result.returncode}"


@pytest.mark.parametrize("code", ["0", "2", "3", "4", "1"])
def test_every_exit_code_is_documented(code: str) -> None:
    assert f"`{code}`" in PAGE.read_text()
