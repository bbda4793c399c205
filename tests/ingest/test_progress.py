"""The progress display: per file bytes, rate and ETA, then the stage, on a terminal only."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import pytest

from pipeline.ingest.read import FileShape, read_file
from pipeline.ingest.run import ingest
from pipeline.progress import Display
from pipeline.simulate.writers import write_events
from tests.ingest.helpers import enrollment, make_deployment, symptom


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_displayed_when_stderr_is_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dep = make_deployment(tmp_path / "s")
    dep.deliver("NL01", "a.csv", [enrollment("EN1"), symptom("E1")])
    assert Display(True).enabled is False
    ingest(dep.paths, dep.study, progress=True)
    err = capsys.readouterr().err
    assert err.strip() == "reading NL01/a.csv ...", "a log sees the one line per file it saw before"


def test_a_terminal_sees_each_file_and_then_the_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = make_deployment(tmp_path / "s")
    dep.deliver("NL01", "a.csv", [enrollment("EN1"), symptom("E1")])
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    ingest(dep.paths, dep.study, progress=True)
    shown = terminal.getvalue()
    for text in ("reading NL01/a.csv", "validating with Great Expectations", "deciding and committing"):
        assert text in shown


@pytest.mark.parametrize("name", ["f.csv", "f.jsonl", "f.csv.gz", "f.jsonl.gz", "f.parquet"])
def test_the_reader_counts_the_bytes_read_from_disk(tmp_path: Path, name: str) -> None:
    rows = [symptom(f"E{i}") for i in range(300)]
    plain = tmp_path / name.removesuffix(".gz")
    write_events(rows, plain)
    path = plain
    if name.endswith(".gz"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(plain.read_bytes()))
    shape = FileShape()
    fmt = name.split(".", 1)[1]
    assert sum(c.num_rows for c in read_file(path, fmt, shape)) == 300
    assert shape.bytes_read == path.stat().st_size
