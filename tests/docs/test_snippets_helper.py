"""The snippet extractor that the README and docs-page tests share (tests/snippets.py)."""

import sys
import traceback
from pathlib import Path

import pytest

from tests.snippets import CONTINUES_MARKER, SKIP_MARKER, python_snippets, run_snippets

PAGE = f"""# A page

```python
a = 1
```

{SKIP_MARKER}
```python
raise RuntimeError("needs torchrun")
```

- a list item with an indented block:

  ```python
  # continues the example above
  b = a + 1
  ```

```bash
echo not python
```

```python
# pkg_for_snippet_test/mod.py
VALUE = 42
```

```python
# continues the example above
from pkg_for_snippet_test.mod import VALUE
c = b + VALUE
```
"""


def test_blocks_in_order_without_the_skipped_one() -> None:
    snippets = python_snippets(PAGE)
    assert [s.code.splitlines()[0] for s in snippets] == [
        "a = 1", CONTINUES_MARKER, "# pkg_for_snippet_test/mod.py", CONTINUES_MARKER,
    ]  # fmt: skip
    assert snippets[0].line == PAGE.splitlines().index("a = 1") + 1
    assert snippets[1].code == f"{CONTINUES_MARKER}\nb = a + 1\n"  # dedented
    assert [s.file for s in snippets] == [None, None, "pkg_for_snippet_test/mod.py", None]
    assert [s.continues for s in snippets] == [False, True, False, True]


@pytest.mark.parametrize(
    "page",
    [
        f"{SKIP_MARKER}\n```bash\nls\n```\n",
        f"{SKIP_MARKER}\nsome text\n```python\nx = 1\n```\n",
        f"text\n{SKIP_MARKER}\n",
        "```python\nx = 1\n",
    ],
    ids=["marker-before-bash", "marker-before-text", "marker-at-end", "unclosed-fence"],
)
def test_malformed_pages_are_errors(page: str) -> None:
    with pytest.raises(ValueError, match="line"):
        python_snippets(page)


def test_run_writes_module_blocks_and_forgets_them(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    namespace = run_snippets(page, tmp_path)
    assert namespace["c"] == 2 + 42
    assert (tmp_path / "pkg_for_snippet_test" / "mod.py").read_text() == "# pkg_for_snippet_test/mod.py\nVALUE = 42\n"
    assert "pkg_for_snippet_test.mod" not in sys.modules and "pkg_for_snippet_test" not in sys.modules
    assert str(tmp_path) not in sys.path


def test_a_failing_block_points_at_its_line_of_the_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\ntext\n\n```python\nx = 1\ny = undefined_name\n```\n")
    with pytest.raises(NameError) as info:
        run_snippets(page, tmp_path)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.filename, last.lineno) == (str(page), 7)


def test_each_block_runs_on_its_own_unless_it_says_it_continues(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nimport math\nx = math.pi\n```\n\n```python\ny = math.pi\n```\n")
    with pytest.raises(NameError, match="math"):
        run_snippets(page, tmp_path)
    page.write_text(f"```python\nimport math\nx = math.pi\n```\n\n```python\n{CONTINUES_MARKER}\ny = x\n```\n")
    assert run_snippets(page, tmp_path)["y"] == pytest.approx(3.14159, abs=1e-5)
