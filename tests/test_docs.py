"""Every docstring example in the public modules runs and shows what it says."""
import doctest
import importlib

import pytest

MODULES = ["velostream", "velostream.api", "velostream.engine", "velostream.result", "velostream.batch",
           "velostream.datagen", "velostream.jobs.coordinator", "velostream._core.strings"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    failures, tried = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried > 0, f"{name} has no examples"
    assert failures == 0
