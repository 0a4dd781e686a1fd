"""Every docstring example of the package runs and prints what it says (doctest).

Examples marked ``# doctest: +SKIP`` need files or long training and are left out
by doctest itself; everything else is executed here.
"""

import doctest
import importlib
import pkgutil

import pytest

import neuronedit_tf

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(neuronedit_tf.__path__, "neuronedit_tf.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_modules_and_their_examples_are_found():
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for name in MODULES
                   for test in finder.find(importlib.import_module(name)))
    expected = {"neuronedit_tf.editor", "neuronedit_tf.layers", "neuronedit_tf.bench.batch"}
    assert expected <= set(MODULES)
    assert examples > 100
