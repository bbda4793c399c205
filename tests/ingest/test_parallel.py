"""Two processes ingesting two sites at once cannot corrupt the log or the DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.ingest.helpers import enrollment, make_deployment, symptom

pytestmark = pytest.mark.slow


def test_two_site_processes_at_once_keep_the_log_consistent(tmp_path: Path) -> None:
    dep = make_deployment(tmp_path / "s")
    for site, patient in (("NL01", "P1"), ("NL02", "P5")):
        rows = [enrollment(f"{site}-E0", patient=patient, site=site)]
        rows += [symptom(f"{site}-S{i}", patient=patient, site=site, occurred=f"2026-01-{5 + i:02d}T09:00:00Z")
                 for i in range(20)]
        dep.deliver(site, f"{site}.csv", rows)
    # the same event_id delivered by both sites: exactly one may win
    dep.deliver("NL01", "z.csv", [symptom("SHARED", patient="P1")])
    dep.deliver("NL02", "z.csv", [symptom("SHARED", patient="P5", site="NL02", leg_pain_nrs=2)])
    procs = [subprocess.Popen([sys.executable, "-c",
                               "import sys; from pipeline.config import Paths, load_study; "
                               "from pipeline.ingest.run import ingest; from pathlib import Path; "
                               "p = Paths(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])); "
                               "ingest(p, load_study(p.study), sites=[sys.argv[4]])",
                               str(dep.paths.study), str(dep.paths.landing), str(dep.paths.warehouse), site],
                              env=dict(os.environ), stderr=subprocess.PIPE)
             for site in ("NL01", "NL02")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    assert dep.q("SELECT count(*), count(DISTINCT event_id) FROM events") == [(43, 43)]
    assert dep.q("SELECT count(*) FROM quarantine WHERE list_contains(rules, 'event_id_conflict')") == [(1,)]
    con = duckdb.connect(str(dep.paths.db_path), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (43,)
