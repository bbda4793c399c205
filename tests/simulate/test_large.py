"""write_large_csv: one big CSV delivery, written in chunks, cut at a row boundary under the target size."""

from __future__ import annotations

from pathlib import Path

from pipeline.simulate import SimulationOptions, write_large_csv
from tests.simulate.dts import instant, read_rows, violations

REFERENCE = instant(SimulationOptions().reference_time)


def test_a_large_csv_is_one_valid_delivery_just_under_the_target(tmp_path: Path) -> None:
    target = 3_000_000
    result = write_large_csv(tmp_path / "NL01" / "big.csv", SimulationOptions(seed=3), target, chunk_patients=40)
    data = result.path.read_bytes()
    assert len(data) == result.n_bytes <= target and len(data) > target - 2_000
    assert data.endswith(b"\n") and data.count(b"\nevent_id,") == 0  # one header
    rows = read_rows(result.path)
    assert len(rows) == result.n_rows > 10_000
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert len({r["patient_id"] for r in rows}) == result.n_patients > 40  # more than one chunk
    seen: set[str] = set()
    for row in rows:
        assert violations(row, "NL01", REFERENCE) == [], row
        assert row["target_event_id"] is None or row["target_event_id"] in seen
        seen.add(row["event_id"] or "")
