"""Ingest of one site, derive and report started at the same moment, again and again: every run
succeeds, the derived tables always match one state of the log, and the log verifies."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.derive.api import derive_in_memory
from tests.faults.helpers import assert_log_once, assert_verifies, cli, popen, table_digests
from tests.ingest.helpers import Deployment, symptom

pytestmark = pytest.mark.slow
ROUNDS = 10
NO_PDF = {"TRIALPIPE_CHROMIUM": "/nonexistent/chromium"}


def _dq_batches(dep: Deployment) -> int:
    con = duckdb.connect(str(dep.paths.db_path), read_only=True)
    try:
        ((n,),) = con.execute("select count(*) from dq_batch").fetchall()
    finally:
        con.close()
    return int(n)


@pytest.mark.timeout(2400)  # ten rounds of three processes that wait for each other's writer lock
def test_ingest_derive_and_report_at_the_same_moment_agree_every_time(ingested: Deployment) -> None:
    assert cli(ingested, "derive").returncode == 0
    events = len(ingested.q("SELECT * FROM events"))
    for r in range(ROUNDS):
        ingested.deliver("NL01", f"round{r}.csv",
                         [symptom(f"R{r}-{i}", occurred=f"2026-03-{1 + i:02d}T09:00:00Z") for i in range(3)])
        batches = len(ingested.q("SELECT * FROM batches"))
        procs = {cmd: popen(ingested, cmd, env=NO_PDF) for cmd in ("ingest", "derive", "report")}
        for cmd, proc in procs.items():
            _out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"round {r}: {cmd} failed: {err}"
        events += 3
        assert len(ingested.q("SELECT * FROM events")) == events
        assert _dq_batches(ingested) in (batches, batches + 1), "derive saw the log before or after the batch"
        assert (ingested.paths.reports_dir / "dq_dashboard.html").read_text().rstrip().endswith("</html>")
        assert_log_once(ingested)
        assert_verifies(ingested)

    assert cli(ingested, "derive").returncode == 0
    fresh = derive_in_memory(ingested.paths, ingested.study)
    try:
        stored = table_digests(ingested.paths.db_path)
        for table, digest in stored.items():
            assert digest == fresh.execute(f"select count(*), md5(string_agg(r, '|' order by r)) "
                                           f"from (select x::varchar as r from {table} x)").fetchall()[0], table
    finally:
        fresh.close()
