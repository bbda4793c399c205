"""The weekly reports to the study team: `trialpipe report --mail` and the `outcome_report` DAG.

One message per report week (`report:<ISO week>` in the notification ledger) to
`TRIALPIPE_REPORT_EMAIL_TO`: the outcome report and the data-quality dashboard attached as PDF, or as
their self-contained HTML where no PDF was printed (no Chromium), and a plain-text summary in the body
(pipeline.report.summary). A retried task or a second `--mail` in the same week sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.config import Paths, Study
from pipeline.notify import ledger
from pipeline.notify.ledger import REPORT
from pipeline.notify.mail import ENV_REPORT_TO, MailSettings, NotificationError, compose, message_id
from pipeline.notify.red_flags import notify_lock, refused_error
from pipeline.report.api import DQ_HTML, OUTCOME_HTML
from pipeline.report.data import load_report_data
from pipeline.report.dq import iso_week
from pipeline.report.summary import mail_summary


@dataclass
class ReportMailResult:
    period: str
    recipients: tuple[str, ...] = ()
    attached: tuple[str, ...] = ()
    already: bool = False

    def describe(self) -> str:
        if self.already:
            return f"report mail: the report of {self.period} was mailed before; nothing sent"
        return (f"report mail: the report of {self.period} mailed to {', '.join(self.recipients)} "
                f"({', '.join(self.attached)})")


def attachments(written: Sequence[Path]) -> list[Path]:
    """Per report, its PDF when one was printed, else its self-contained HTML."""
    out = []
    for name in (OUTCOME_HTML, DQ_HTML):
        html = next((p for p in written if p.name == name), None)
        if html is None:
            raise NotificationError(f"{name} was not written: nothing to mail (run trialpipe report first)")
        pdf = html.with_suffix(".pdf")
        out.append(pdf if pdf in written and pdf.exists() else html)
    return out


def period_of(at: datetime, as_of: datetime | None = None) -> str:
    return iso_week(at) if as_of is None else f"{iso_week(as_of)}-as-of-{as_of:%Y%m%dT%H%M%SZ}"


def mail_reports(paths: Paths, study: Study, written: Sequence[Path], period: str | None = None,
                 as_of: datetime | None = None, env: Mapping[str, str] | None = None) -> ReportMailResult:
    """Mail the written reports with their summary, once per report week; raise when that is impossible."""
    settings = MailSettings.from_env(env, ENV_REPORT_TO)
    files = attachments([Path(p) for p in written])
    data = load_report_data(paths, study, as_of)
    period = period or period_of(data.reference_time, as_of)
    item = f"report:{period}"
    with notify_lock(paths):
        for r in ledger.resume(paths, [REPORT], settings):
            if r.refused:
                raise refused_error("an interrupted report was", r.recipients, r.refused, ENV_REPORT_TO)
        if item in ledger.covered(paths, REPORT):
            return ReportMailResult(period, already=True)
        settings.require(f"the report of {period}")
        names = [p.name for p in files]
        subject = f"trialpipe: weekly report {period} – {study.study_id}"
        msg = compose(subject, mail_summary(data, ledger.last_sent(paths, REPORT), names), settings,
                      message_id(REPORT, [item], settings.recipients, settings.sender), files)
        accepted = ledger.deliver(paths, REPORT, [item], msg, settings)
    refused = [r for r in settings.recipients if r not in accepted]
    if refused:
        raise refused_error(f"the report of {period} was", accepted, refused, ENV_REPORT_TO)
    return ReportMailResult(period, accepted, tuple(names))
