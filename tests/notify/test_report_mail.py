"""The weekly report mail to the study team: the reports attached, a plain-text summary, once per week."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.notify import ENV_REPORT_TO, NotificationError
from pipeline.notify.reports import mail_reports
from pipeline.report.api import write_reports
from pipeline.report.data import ReportData
from pipeline.report.summary import mail_summary
from tests.report.helpers import FORMULA, NOW, PHONE, SCRIPT, START, STUDY, make_warehouse, sample_tables
from tests.smtp_sink import STUDY_TEAM, SmtpSink


def test_the_summary_gives_enrolment_by_arm_alerts_unvalidated_first_flagged_sites_and_this_weeks_rejections(
) -> None:
    data = ReportData.build(STUDY, sample_tables(), "ab" * 32, generated_at=NOW)
    body = mail_summary(data, None, ["outcome_report.pdf", "dq_dashboard.pdf"])
    lines = body.splitlines()
    start = lines.index("Patients enrolled, by arm:")
    assert lines[start + 1:start + 4] == ["  surgery: 12", "  conservative: 12", "  total: 24"]
    assert "Red-flag alerts since the last report (the first report): 2, 1 of them UNVALIDATED" in body
    unvalidated = next(i for i, line in enumerate(lines) if line.startswith("  UNVALIDATED  SADDLE  site NL02"))
    validated = next(i for i, line in enumerate(lines) if line.startswith("  validated    BLADDER  site NL01"))
    assert unvalidated < validated and "patient P001" in lines[unvalidated] and "event E-x" in lines[unvalidated]
    assert "Sites flagged by the data-quality check: 2" in body
    assert any(line.startswith("  silent (>= 7 days): NL03: no new file for") for line in lines)
    assert any(line.startswith("  rejection jump: NL02: 49% of rows rejected in 2025-W07 (22/45)") for line in lines)
    assert "Rows rejected this week (2025-W07, by ingestion time): 24 of 85 received" in body
    assert "  NL01: 2 of 40" in lines and "  NL02: 22 of 45" in lines
    for free_text in (SCRIPT, FORMULA, PHONE, "bladder dysfunction reported", "comment"):
        assert free_text not in body  # codes and numbers only: no message, no comment of any row


def test_alerts_since_the_last_report_only(tmp_path: Path) -> None:
    data = ReportData.build(STUDY, sample_tables(), generated_at=NOW)
    body = mail_summary(data, START + timedelta(days=25), [])
    assert "1 of them UNVALIDATED" in body and "SADDLE" in body and "BLADDER" not in body


def test_report_mail_attaches_both_reports_and_goes_once_per_week(tmp_path: Path, sink: SmtpSink) -> None:
    paths = make_warehouse(tmp_path, sample_tables())
    written = write_reports(paths, STUDY)
    result = mail_reports(paths, STUDY, written, env=sink.env())
    (mail,) = sink.messages
    assert mail.rcpt_to == [STUDY_TEAM] and result.recipients == (STUDY_TEAM,)
    assert mail.subject == f"trialpipe: weekly report {result.period} – SCIATICA-01"
    assert mail.message.get_body(("plain",)).get_content_type() == "text/plain"  # type: ignore[union-attr]
    attached = mail.attachments()
    pdfs = {p.name for p in written if p.suffix == ".pdf"}
    expected = {"outcome_report.pdf", "dq_dashboard.pdf"} if pdfs else {"outcome_report.html", "dq_dashboard.html"}
    assert set(attached) == expected == set(result.attached)
    for name, (ctype, data) in attached.items():
        assert ctype == ("application/pdf" if name.endswith(".pdf") else "text/html")
        assert data == (paths.reports_dir / name).read_bytes()
    assert "Patients enrolled, by arm:" in mail.body and "Attached: " in mail.body
    again = mail_reports(paths, STUDY, written, env=sink.env())  # a retried task, or a second --mail
    assert again.already and len(sink.messages) == 1


def test_report_mail_without_recipients_names_the_variable(tmp_path: Path, sink: SmtpSink) -> None:
    paths = make_warehouse(tmp_path, sample_tables())
    written = write_reports(paths, STUDY)
    env = {k: v for k, v in sink.env().items() if k != ENV_REPORT_TO}
    with pytest.raises(NotificationError, match=f"cannot be mailed: set {ENV_REPORT_TO}"):
        mail_reports(paths, STUDY, written, env=env)
    assert not sink.messages
    mail_reports(paths, STUDY, written, env=sink.env())
    assert len(sink.messages) == 1


STUDY_TOML = """study_id = "SCIATICA-01"
arms = ["surgery", "conservative"]
[[sites]]
id = "NL01"
[[sites]]
id = "NL02"
[[sites]]
id = "NL03"
"""


def test_cli_report_mail_mails_once_and_fails_in_one_line_without_recipients(tmp_path: Path, sink: SmtpSink) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main
    from pipeline.store.audit import adopt

    paths = make_warehouse(tmp_path, sample_tables())
    paths.study.write_text(STUDY_TOML)
    adopt(paths)  # the helper writes a warehouse as before the audit chain: chain it, as an operator would
    where = ["--study", str(paths.study), "--landing", str(paths.landing), "--warehouse", str(paths.warehouse)]
    no_team = {k: v for k, v in sink.env().items() if k != ENV_REPORT_TO}
    failed = CliRunner().invoke(main, ["report", "--mail", *where], env=no_team)
    assert failed.exit_code == 1 and len(failed.stderr.splitlines()) == 1
    assert failed.stderr.startswith("trialpipe: the report of ") and ENV_REPORT_TO in failed.stderr
    assert (paths.reports_dir / "outcome_report.html").exists() and not sink.messages  # written, not mailed
    ok = CliRunner().invoke(main, ["report", "--mail", *where], env=sink.env())
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.splitlines()[-1].startswith("report mail: the report of ")
    assert f"mailed to {STUDY_TEAM}" in ok.stdout and len(sink.messages) == 1
    again = CliRunner().invoke(main, ["report", "--mail", *where], env=sink.env())
    assert again.exit_code == 0 and "was mailed before; nothing sent" in again.stdout and len(sink.messages) == 1
