"""Run the ```python blocks of a Markdown page as code (and find its ```yaml blocks): docs that cannot rot.

Shared by the README test and the docs-page tests. Each block runs on its own, in a fresh namespace, as a reader who
copies just that block would run it. A block whose first line is :data:`CONTINUES_MARKER` says so to the reader and
runs in the namespace of the block before it. A block preceded by a ``<!-- skip-test -->`` line (blank lines between are
allowed) is not tested: for things that need torchrun or a GPU. A block whose first line is a comment naming a file,
``# my_project/modifiers.py``, shows a user's module: it is written to that path in the working directory (which is
put on ``sys.path``) instead of being run, so the following blocks can import it.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

SKIP_MARKER = "<!-- skip-test -->"
CONTINUES_MARKER = "# continues the example above"
_FILE_HEADER = re.compile(r"# ([A-Za-z_][\w/]*\.py)\s*")


@dataclass(frozen=True)
class Snippet:
    """One fenced block of a page: its code and the 1-based line of the page its first code line is on."""

    code: str
    line: int

    @property
    def file(self) -> str | None:
        """The relative path of the module this block shows (its ``# path.py`` first line), or None."""
        match = _FILE_HEADER.fullmatch(self.code.split("\n", 1)[0])
        return match.group(1) if match else None

    @property
    def continues(self) -> bool:
        """Whether the block continues the one before it (its first line is :data:`CONTINUES_MARKER`)."""
        return self.code.split("\n", 1)[0].strip() == CONTINUES_MARKER


TESTED_LANGUAGES = ("python", "yaml")
"""The fenced-block languages the docs tests check (python blocks run, yaml blocks validate); a skip marker must
precede one of these."""


def code_blocks(text: str, language: str) -> list[Snippet]:
    """The ```<language> blocks of Markdown ``text`` that are not opted out with :data:`SKIP_MARKER`, in page order.

    Raises:
        ValueError: If a fence is left open or a skip marker is followed by something other than a tested block.
    """
    lines = text.splitlines()
    blocks: list[Snippet] = []
    skip_pending_at: int | None = None
    misplaced_marker = f"{SKIP_MARKER} must precede a block of one of {TESTED_LANGUAGES}"
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped == SKIP_MARKER:
            skip_pending_at = i + 1
        elif stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            block_language = stripped[len(fence) :].strip()
            if skip_pending_at is not None and block_language not in TESTED_LANGUAGES:
                raise ValueError(f"line {skip_pending_at}: {misplaced_marker}")
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
            if end is None:
                raise ValueError(f"line {i + 1}: code fence {fence} is never closed")
            if block_language == language and skip_pending_at is None:
                blocks.append(Snippet(textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n", i + 2))
            skip_pending_at = None
            i = end
        elif stripped and skip_pending_at is not None:
            raise ValueError(f"line {skip_pending_at}: {misplaced_marker}")
        i += 1
    if skip_pending_at is not None:
        raise ValueError(f"line {skip_pending_at}: {misplaced_marker}")
    return blocks


def python_snippets(text: str) -> list[Snippet]:
    """The ```python blocks of ``text`` to run, in page order (see :func:`code_blocks`)."""
    return code_blocks(text, "python")


def run_snippets(page: Path, workdir: Path) -> dict[str, object]:
    """Execute the python blocks of ``page`` in order, each in a fresh namespace, inside ``workdir``.

    A block marked with :data:`CONTINUES_MARKER` runs in the namespace of the block before it. Returns the namespace
    of the last block.

    Module blocks (see the module docstring) are written under ``workdir``. Each block is compiled with the page's
    path and line numbers, so a traceback points at the failing line of the page. Afterwards ``sys.path`` and
    ``sys.modules`` are as before (modules imported from ``workdir`` are forgotten); the working directory is the
    caller's business.
    """
    namespace: dict[str, object] = {}
    modules_before = set(sys.modules)
    sys.path.insert(0, str(workdir))
    try:
        for snippet in python_snippets(page.read_text()):
            if snippet.file is not None:
                target = workdir / snippet.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(snippet.code)
                continue
            if not snippet.continues:
                namespace = {"__name__": f"docs.{page.stem}"}
            source = "\n" * (snippet.line - 1) + snippet.code
            exec(compile(source, str(page), "exec"), namespace)
    finally:
        sys.path.remove(str(workdir))
        for name in set(sys.modules) - modules_before:
            if _loaded_from(sys.modules[name], workdir):
                del sys.modules[name]
    return namespace


def _loaded_from(module: ModuleType, directory: Path) -> bool:
    # The spec, not __path__: some extension modules (torch._classes) have a __path__ that is not a list.
    spec = getattr(module, "__spec__", None)
    locations = [spec.origin, *(spec.submodule_search_locations or [])] if spec is not None else []
    return any(Path(location).is_relative_to(directory) for location in locations if isinstance(location, str))
