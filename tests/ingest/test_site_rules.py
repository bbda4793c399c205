"""DTS §2 (a row naming another site) and §5 (every rejected row reaches the site's query list)."""

from __future__ import annotations

import csv
import io

from pipeline.ingest.summary import print_summary
from tests.ingest.helpers import Deployment, enrollment, symptom


def _query_list(dep: Deployment, site: str) -> list[tuple[str, str, str, str]]:
    text = (dep.paths.queries_dir / site / "query_list.csv").read_text(encoding="utf-8")
    return [(r["file"], r["record"], r["event_id"], r["rule"]) for r in csv.DictReader(io.StringIO(text))]


def test_row_naming_another_site_is_rejected_not_a_duplicate_even_when_identical_to_an_accepted_event(
        dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1")])
    dep.ingest()
    dep.deliver("NL02", "a.csv", [symptom("S1")])  # byte-identical to NL01's row, site_id NL01
    summary = dep.ingest()
    (b,) = summary.batches
    assert (b["received"], b["accepted"], b["rejected"], b["duplicates"]) == (1, 0, 1, 0)
    assert dep.q("SELECT site_id, event_id, rules FROM quarantine") == [("NL02", "S1", ["site_mismatch"])]
    out = io.StringIO()
    print_summary(summary, out)
    assert "SECURITY: 1 row(s) delivered by NL02 name another site (site_mismatch, quarantined)" in out.getvalue()
    assert _query_list(dep, "NL02") == [("NL02/a.csv", "1", "S1", "site_mismatch")]


def test_enrollment_naming_another_site_gets_only_site_mismatch(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.ingest()
    # row 1 is identical to NL01's enrollment, site_id NL01: the claim is not looked up
    dep.deliver("NL02", "a.csv", [enrollment("E1"), enrollment("E5", site="NL02", patient="P5")])
    dep.ingest()
    assert dep.q("SELECT site_id, event_id, rules FROM quarantine") == [("NL02", "E1", ["site_mismatch"])]


def test_row_rejected_as_event_id_conflict_with_another_sites_event_is_on_the_query_list(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.deliver("NL02", "a.csv", [enrollment("E1", site="NL02", patient="P5")])
    dep.ingest()
    assert _query_list(dep, "NL02") == [("NL02/a.csv", "1", "E1", "event_id_conflict")]
    assert _query_list(dep, "NL01") == []


def test_resending_different_content_for_an_accepted_event_id_stays_on_the_query_list(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1", leg=5)])
    dep.ingest()
    dep.deliver("NL01", "b.csv", [symptom("S1", leg=7)])
    dep.ingest()
    assert _query_list(dep, "NL01") == [("NL01/b.csv", "1", "S1", "event_id_conflict")]


def test_query_closes_when_a_later_row_of_the_same_file_is_accepted_with_that_event_id(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1", leg=12), symptom("S1", leg=8)])
    dep.ingest()
    assert dep.q("SELECT event_id, leg_pain_nrs FROM events WHERE event_id = 'S1'") == [("S1", 8)]
    assert _query_list(dep, "NL01") == []


def test_query_of_another_site_is_not_closed_by_this_sites_resubmission(dep: Deployment) -> None:
    dep.deliver("NL02", "a.csv", [enrollment("E9", site="NL02", patient="P5"),
                                  symptom("S1", site="NL02", patient="P5", leg=12)])
    dep.ingest()
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1")])  # NL01 takes the event_id S1
    dep.ingest()
    assert _query_list(dep, "NL02") == [("NL02/a.csv", "2", "S1", "out_of_range")]


def test_a_copy_of_another_sites_file_is_read_and_rejected_not_skipped_as_a_file_duplicate(dep: Deployment) -> None:
    first = dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1")])
    dep.ingest()
    dep.deliver("NL02", "a.csv", first.read_bytes())  # the very same bytes, in NL02's folder
    summary = dep.ingest()
    (b,) = summary.batches
    assert (b["status"], b["received"], b["rejected"]) == ("ingested", 2, 2)
    assert dep.q("SELECT event_id, rules FROM quarantine ORDER BY event_id") == [
        ("E1", ["site_mismatch"]), ("S1", ["site_mismatch"]),
    ]
    dep.deliver("NL01", "b.csv", first.read_bytes())  # the same bytes again in NL01's own folder: a no-op
    (again,) = dep.ingest().batches
    assert again["status"] == "file_duplicate"


def test_every_run_rewrites_the_query_lists_even_with_nothing_new(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1", leg=11)])
    dep.ingest()
    listed = dep.paths.queries_dir / "NL01" / "query_list.csv"
    listed.unlink()  # as if the run had been killed after its last commit, before writing the lists
    assert dep.ingest().batches == []
    assert _query_list(dep, "NL01") == [("NL01/a.csv", "2", "S1", "out_of_range")]
