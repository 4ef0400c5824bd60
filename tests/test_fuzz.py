"""The bounded fuzzing run CI does: the same mutated models every time (derandomized)."""

from fuzzing import Tally, fuzz


def test_mutated_models_never_crash_and_are_never_modified():
    tally = fuzz(120, Tally(), derandomize=True)
    assert tally.tried >= 100
    assert tally.crashes == [], "\n\n".join(tally.crashes[:3])
    assert tally.modified == 0
    assert tally.read_outside == [], tally.read_outside[:3]
