"""interface.md, Command line: exit 0 when the run completed; otherwise non-zero and one line on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main
from pipeline.derive.lock import create_lock
from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom


@pytest.fixture
def dep(tmp_path: Path) -> Deployment:
    return make_deployment(tmp_path / "study")


def run(dep: Deployment, *args: str) -> Result:
    where = ["--study", str(dep.paths.study), "--landing", str(dep.paths.landing),
             "--warehouse", str(dep.paths.warehouse)]
    return CliRunner().invoke(main, [*args, *where])


def assert_one_line_failure(result: Result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trialpipe: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [
    (["derive", "--as-of", "yesterday"], "'yesterday' is not an ISO-8601 timestamp"),
    (["derive", "--as-of", "2026-01-05T09:00:00"], "with an offset"),
    (["export", "--format", "xml", "--out", "x"], "'xml' is not one of"),
    (["export", "--format", "csv"], "Missing option '--out'"),
    (["validate", "{file}"], "Missing option '--site'"),
    (["validate", "--site", "NL01"], "Missing argument 'FILE'"),
    (["validate", "{missing}", "--site", "NL01"], "does not exist"),
    (["derive", "--asof", "2026-01-05T09:00:00Z"], "No such option"),
    (["nosuch"], "No such command 'nosuch'"),
])
def test_usage_errors_print_one_line_on_stderr_and_exit_2(dep: Deployment, args: list[str], says: str) -> None:
    file = dep.deliver("NL01", "a.csv", [enrollment("E1")])
    args = [a.format(file=file, missing=dep.root / "missing.csv") for a in args]
    result = CliRunner().invoke(main, args)
    line = assert_one_line_failure(result, exit_code=2)
    assert says in line
    assert result.stdout == ""


def test_usage_errors_are_one_line_from_the_installed_command_too(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "derive", "--as-of", "yesterday"],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr == ("trialpipe: Invalid value for '--as-of': 'yesterday' is not an ISO-8601 timestamp\n")
    assert done.stdout == ""


@pytest.mark.parametrize("args", [["--help"], ["derive", "--help"], ["export", "--help"], ["lock", "--help"]])
def test_help_still_prints_the_usage_and_exits_0(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, prog_name="trialpipe")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Usage: trialpipe")
    assert result.stderr == ""


def test_a_corrupt_trial_duckdb_is_one_line_not_a_traceback(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.ingest()
    dep.paths.db_path.write_bytes(b"this is not a DuckDB database file" * 200)
    line = assert_one_line_failure(run(dep, "derive"))
    assert "Traceback" not in line


def test_a_duckdb_error_while_exporting_is_one_line_not_a_traceback(dep: Deployment, tmp_path: Path) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.ingest()
    out = tmp_path / "out"
    (out / "trajectory.csv").mkdir(parents=True)  # DuckDB cannot write the file where a folder is
    line = assert_one_line_failure(run(dep, "export", "--format", "csv", "--out", str(out)))
    assert "trajectory.csv" in line


def test_lock_verify_of_an_unknown_lock_reports_on_stdout_and_one_line_on_stderr(dep: Deployment) -> None:
    result = run(dep, "lock", "nosuch", "--verify")
    line = assert_one_line_failure(result)
    assert result.stdout.startswith("data lock 'nosuch' not found (")
    assert len(result.stdout.splitlines()) == 1
    assert line.startswith("trialpipe: lock 'nosuch' does not verify: data lock 'nosuch' not found")


def test_lock_verify_lists_several_problems_on_stdout_and_one_reason_on_stderr(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2")])
    dep.ingest()
    folder = create_lock(dep.paths, dep.study, "interim-1")
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"lock": "interim-1"', '"lock": "other"'))
    with open(folder / "tables" / "patient_week.csv", "a") as fh:
        fh.write("NL01,P1,surgery,9,recovered,,,0\n")
    result = run(dep, "lock", "interim-1", "--verify")
    line = assert_one_line_failure(result)
    problems = result.stdout.splitlines()
    assert "manifest.json does not match manifest.json.sha256: the manifest was changed" in problems
    assert "locked table tables/patient_week.csv changed (SHA-256 differs)" in problems
    assert line == f"trialpipe: lock 'interim-1' does not verify ({len(problems)} problems, listed on stdout)"


def test_lock_verify_of_a_good_lock_exits_0(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2")])
    dep.ingest()
    create_lock(dep.paths, dep.study, "interim-1")
    result = run(dep, "lock", "interim-1", "--verify")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "lock 'interim-1' verified\n" and result.stderr == ""


def test_ingest_with_nothing_new_counts_the_files_already_ingested(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.deliver("NL02", "bad.csv", b"not,an,event,file\n\xff\xfe\n")  # rejected whole: in the ledger as well
    first = run(dep, "ingest")
    assert first.exit_code == 0, first.stderr
    assert "nothing new" not in first.stdout
    again = run(dep, "ingest")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == "ingest: nothing new (2 file(s) already ingested)\n"


def test_ingest_summary_counts_skipped_files_in_scope(dep: Deployment) -> None:
    dep.paths.landing.mkdir(parents=True)
    assert dep.ingest().skipped == 0  # an empty landing zone
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.deliver("NL02", "a.csv", [enrollment("F1", site="NL02")])
    assert dep.ingest().skipped == 0
    dep.deliver("NL01", "b.csv", [symptom("E2")])
    summary = dep.ingest()
    assert (len(summary.batches), summary.skipped, summary.to_dict()["skipped"]) == (1, 2, 2)
    assert dep.ingest(sites=["NL02"]).skipped == 1


def test_ingest_from_a_landing_zone_that_does_not_exist_fails_in_one_line(dep: Deployment, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", "--study", str(dep.paths.study), "--landing",
                                       str(tmp_path / "typo"), "--warehouse", str(dep.paths.warehouse)])
    assert "landing zone" in assert_one_line_failure(result) and "typo" in result.stderr


def test_demo_never_replaces_an_existing_study_configuration(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text('study_id = "REAL"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["demo", "--study", str(study), "--landing", str(tmp_path / "landing"),
                                       "--warehouse", str(tmp_path / "warehouse")])
    assert "study.toml exists" in assert_one_line_failure(result)
    assert study.read_text(encoding="utf-8") == 'study_id = "REAL"\n'
    assert not (tmp_path / "landing").exists()


def test_the_common_options_may_come_before_the_command_and_after_it_wins(dep: Deployment, tmp_path: Path) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    before = ["--study", str(dep.paths.study), "--landing", str(dep.paths.landing),
              "--warehouse", str(tmp_path / "elsewhere")]
    result = CliRunner().invoke(main, [*before, "ingest", "--warehouse", str(dep.paths.warehouse)])
    assert result.exit_code == 0, result.stderr
    assert dep.q("SELECT event_id FROM events") == [("E1",)]
    assert not (tmp_path / "elsewhere").exists()
    again = CliRunner().invoke(main, [*before[:4], "--warehouse", str(dep.paths.warehouse), "ingest"])
    assert again.exit_code == 0 and "nothing new" in again.stdout, again.stderr
