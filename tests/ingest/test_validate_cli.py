"""`trialpipe validate FILE --site ID`: the query list, nothing stored."""

from __future__ import annotations

from click.testing import CliRunner

from pipeline.cli import main
from tests.ingest.helpers import Deployment, enrollment, symptom


def test_validate_prints_the_query_list_and_stores_nothing(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.ingest()
    before = sorted(p.name for p in dep.paths.warehouse.rglob("*"))
    path = dep.root / "draft.csv"
    from pipeline.simulate.writers import write_events

    write_events([symptom("E2"), symptom("E3", leg_pain_nrs=11), symptom("E4", patient="P7")], path)
    result = CliRunner().invoke(main, ["validate", str(path), "--site", "NL01", "--study", str(dep.paths.study),
                                       "--landing", str(dep.paths.landing), "--warehouse", str(dep.paths.warehouse)])
    assert result.exit_code == 0, result.output
    assert "draft.csv,2,E3,out_of_range,leg_pain_nrs '11'" in result.output
    assert "draft.csv,3,E4,patient_not_enrolled" in result.output
    assert "E2" not in result.output.split("event_id,rule,message")[1]
    assert sorted(p.name for p in dep.paths.warehouse.rglob("*")) == before


def test_validate_reports_a_file_rejected_whole(dep: Deployment) -> None:
    path = dep.root / "bad.csv"
    path.write_bytes("event_id,event_type,site_id,patient_id,occurred_at,recorded_at,comment\n"
                     "E1,withdrawal,NL01,P1,2026-01-05T09:00:00Z,2026-01-05T09:00:00Z,Müller\n".encode("latin-1"))
    result = CliRunner().invoke(main, ["validate", str(path), "--site", "NL01", "--study", str(dep.paths.study),
                                       "--warehouse", str(dep.paths.warehouse)])
    assert result.exit_code == 0
    assert "FILE REJECTED (not_utf8)" in result.output


def test_unusable_study_configuration_exits_nonzero_with_one_line(dep: Deployment) -> None:
    result = CliRunner().invoke(main, ["ingest", "--study", str(dep.root / "missing.toml")])
    assert result.exit_code == 1
    assert "study configuration" in result.output and result.output.count("\n") == 1
