"""The committed planted-defect models are exactly what fixtures/planted.py builds."""

from __future__ import annotations

import planted as planted_fixtures
from conftest import PLANTED


def test_committed_fixtures_match_the_script(tmp_path):
    written = planted_fixtures.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in PLANTED.iterdir())
    for path in written:
        assert path.read_bytes() == (PLANTED / path.name).read_bytes(), f"{path.name}: run python fixtures/planted.py"
