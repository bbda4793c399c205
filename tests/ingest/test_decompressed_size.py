"""max_file_bytes bounds a file after decompression too: a small .gz that expands past it is rejected whole."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.ingest.read import FileRejected, FileShape, read_file
from pipeline.simulate.writers import write_events
from tests.ingest.helpers import enrollment, make_deployment, symptom

LIMIT = 200_000


def _bomb_csv(tmp: Path) -> bytes:
    """A CSV whose comment column repeats one letter: a few KB gzipped, far more than LIMIT unpacked."""
    plain = tmp / "plain.csv"
    write_events([symptom(f"E{i}", comment="a" * 400) for i in range(2000)], plain)
    return gzip.compress(plain.read_bytes(), 9)


def _bomb_jsonl() -> bytes:
    line = json.dumps(symptom("E1", comment="a" * 400)) + "\n"
    return gzip.compress(line.encode() * 2000, 9)


@pytest.mark.parametrize("name", ["bomb.csv.gz", "bomb.jsonl.gz"])
def test_a_gz_file_that_expands_beyond_max_file_bytes_is_rejected_whole(tmp_path: Path, name: str) -> None:
    data = _bomb_csv(tmp_path) if name.endswith(".csv.gz") else _bomb_jsonl()
    assert len(data) < LIMIT // 10, "the delivered file itself is well within the bound"
    dep = make_deployment(tmp_path / "s", f"max_file_bytes = {LIMIT}")
    dep.deliver("NL01", "0_enrollments.csv", [enrollment("EN1")])
    dep.deliver("NL01", name, data)
    summary = dep.ingest()
    batch = next(b for b in summary.batches if b["source_file"].endswith(name))
    assert batch["status"] == "rejected" and batch["file_rules"] == ["file_too_large"]
    (row,) = dep.q(f"SELECT rules, messages FROM quarantine WHERE source_file LIKE '%{name}'")
    assert row[0] == ["file_too_large"]
    assert "decompressed" in row[1][0] and str(LIMIT) in row[1][0]
    assert dep.q(f"SELECT count(*) FROM events WHERE source_file LIKE '%{name}'") == [(0,)]
    staging = dep.paths.staging_dir
    assert not staging.exists() or not any(staging.iterdir()), "nothing is left in staging"


def test_reading_stops_as_soon_as_the_bound_is_passed(tmp_path: Path) -> None:
    """The reader never decompresses much more than the bound (not the whole bomb)."""
    path = tmp_path / "big.jsonl.gz"
    line = (json.dumps(symptom("E1", comment="a" * 400)) + "\n").encode()
    with gzip.open(path, "wb", compresslevel=1) as fh:
        for _ in range(200_000):  # ~130 MB unpacked
            fh.write(line)
    read = 0
    with pytest.raises(FileRejected) as err:
        for chunk in read_file(path, "jsonl.gz", FileShape(), limit=LIMIT):
            read += chunk.num_rows
    assert err.value.rule == "file_too_large"
    assert read * len(line) <= LIMIT


def test_a_gz_file_within_the_bound_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv.gz"
    plain = tmp_path / "plain.csv"
    write_events([symptom(f"E{i}") for i in range(50)], plain)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    n = sum(c.num_rows for c in read_file(path, "csv.gz", FileShape(), limit=len(plain.read_bytes())))
    assert n == 50
