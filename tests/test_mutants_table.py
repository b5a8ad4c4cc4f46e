"""tools/mutants.py stays in step with the code: every mutant's text occurs exactly once where it
points, changes it, and names test files that exist (running the mutants is `python tools/mutants.py`)."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("mutants", os.path.join(ROOT, "tools", "mutants.py"))
mutants = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutants)


def test_at_least_forty_uniquely_named_mutants():
    names = [m.name for m in mutants.MUTANTS]
    assert len(names) >= 40 and len(set(names)) == len(names)


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.name)
def test_mutant_applies_to_the_current_source(mutant):
    with open(os.path.join(ROOT, mutant.path), encoding="utf-8") as f:
        text = f.read()
    assert mutant.apply(text) != text  # raises LookupError (a STALE mutant) when its text has moved
    for test in mutant.tests:
        assert os.path.exists(os.path.join(ROOT, test.split("::")[0])), test
