"""The ``>>>`` examples in the docstrings (shown on the API pages) run as doctests."""

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import noether


def _modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.walk_packages(noether.__path__, "noether.")]
    return [importlib.import_module(name) for name in sorted(names)]


def _tests_with_examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [test for module in _modules() for test in finder.find(module) if test.examples]


TESTS = _tests_with_examples()


def test_some_docstrings_have_examples() -> None:
    assert any(test.name == "noether.core.schedules.preview.schedule_values" for test in TESTS)


@pytest.mark.parametrize("test", TESTS, ids=lambda test: test.name)
def test_docstring_example(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=lambda text: print(text, end=""))
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {test.name} failed (output above)"
