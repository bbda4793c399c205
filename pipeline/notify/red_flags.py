"""Red-flag notification: every alert not yet notified goes out by e-mail, once, the same day.

"Every red flag reaches a physician the same day" (developer guide; DTS §5 "Safety first"). Alerts are
raised by ingest (also for rejected rows, as UNVALIDATED) and by derive; this module mails those that no
notification has covered yet: ONE plain-text message per run listing every pending alert, unvalidated
first, over SMTP, to `TRIALPIPE_ALERT_EMAIL_TO`.

Each message is recorded in the notification ledger (pipeline.notify.ledger) as intended before it is
sent and as sent after: a run killed in between makes the next run send the same message again (same
Message-ID) before anything new, so no alert is ever skipped and none is composed into two messages.
Runs take a lock of their own (`locks/notify.lock`, not the writer lock) so that two runs at once
(ingest_sites and derive_outcomes) do not both mail the same alerts.

Alerts that are pending while no recipient or SMTP host is configured raise `NotificationError`: an alert
that cannot be delivered must turn the task red. Alerts hold no PHI (site, patient code, flag, times, event
id, a rule's message), and the message holds nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
from filelock import FileLock

from pipeline.config import Paths, Study
from pipeline.notify import ledger
from pipeline.notify.ledger import RED_FLAG
from pipeline.notify.mail import ENV_TO, MailSettings, NotificationError, compose, message_id, text
from pipeline.store.warehouse import dataset_sql

LOCK_TIMEOUT_S = 600


@contextmanager
def notify_lock(paths: Paths) -> Iterator[None]:
    """One notifying run at a time (any kind of message): nothing is composed twice."""
    paths.locks_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.locks_dir / "notify.lock"), timeout=LOCK_TIMEOUT_S):
        yield


@dataclass
class NotifyResult:
    alert_ids: list[str]
    unvalidated: int = 0
    recipients: tuple[str, ...] = ()
    subject: str = ""
    resent: int = 0  # messages of an interrupted run sent again (same Message-ID)

    @property
    def sent(self) -> int:
        return len(self.alert_ids)

    def describe(self) -> str:
        again = f"; sent {self.resent} interrupted message(s) again" if self.resent else ""
        if not self.alert_ids:
            return "red-flag notification: no alert pending" + again
        return (f"red-flag notification: mailed {self.sent} alert(s) ({self.unvalidated} UNVALIDATED) "
                f"to {', '.join(self.recipients)}: {self.subject}{again}")

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "unvalidated": self.unvalidated, "recipients": list(self.recipients),
                "alert_ids": self.alert_ids, "resent": self.resent}


def notified_ids(paths: Paths) -> set[str]:
    """Alert ids that a sent notification has covered."""
    return ledger.sent_items(paths, RED_FLAG)


def pending_alerts(paths: Paths) -> list[dict[str, Any]]:
    """Alerts no notification covers: unvalidated first, then in the order they were raised."""
    sql = f"""
        SELECT alert_id, site_id, patient_id, event_id, flag, validated, source, message,
               strftime(timezone('UTC', occurred_at), '%Y-%m-%d %H:%M UTC') AS occurred,
               strftime(timezone('UTC', raised_at), '%Y-%m-%d %H:%M UTC') AS raised
        FROM ({dataset_sql(paths, 'alerts')}) AS a
        QUALIFY row_number() OVER (PARTITION BY alert_id ORDER BY raised_at) = 1
        ORDER BY validated, raised_at, site_id, patient_id NULLS LAST, occurred_at, event_id, flag
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    done = ledger.covered(paths, RED_FLAG)
    return [row for row in (dict(zip(cols, r, strict=True)) for r in cur.fetchall()) if row["alert_id"] not in done]


def subject_for(alerts: Sequence[Mapping[str, Any]], study_id: str) -> str:
    unvalidated = sum(1 for a in alerts if not a["validated"])
    return f"trialpipe: {len(alerts)} red-flag alert(s) ({unvalidated} UNVALIDATED) – {text(study_id)}"


def body_for(alerts: Sequence[Mapping[str, Any]], study_id: str) -> str:
    unvalidated = sum(1 for a in alerts if not a["validated"])
    lines = [
        f"Study {text(study_id)}: {len(alerts)} red-flag alert(s) not notified before, "
        f"{unvalidated} of them UNVALIDATED.",
        "Every red flag must reach a physician today (DTS section 5, \"Safety first\").",
        "",
        "UNVALIDATED: the row failed validation, so its values are unconfirmed - contact the site today.",
        "",
    ]
    for n, a in enumerate(alerts, 1):
        status = "UNVALIDATED - contact the site today" if not a["validated"] else "validated"
        lines += [
            f"{n}. {text(a['flag'])} [{status}]",
            f"   site:        {text(a['site_id'])}",
            f"   patient:     {text(a['patient_id'])}",
            f"   occurred at: {text(a['occurred'])}",
            f"   event_id:    {text(a['event_id'])}",
            f"   message:     {text(a['message'])}",
            f"   raised by {text(a['source'])} at {text(a['raised'])}; alert_id {text(a['alert_id'])}",
            "",
        ]
    lines.append("Sent by trialpipe once per alert; the alerts table of the warehouse holds them all.")
    return "\n".join(lines) + "\n"


def refused_error(what: str, accepted: Sequence[str], refused: Sequence[str], to_var: str) -> NotificationError:
    return NotificationError(f"{what} mailed to {', '.join(accepted)}, but the SMTP server refused "
                             f"{', '.join(refused)}: check {to_var}")


def notify_red_flags(paths: Paths, study: Study, env: Mapping[str, str] | None = None) -> NotifyResult:
    """Mail every pending red-flag alert in one message and record it; raise when that is impossible."""
    settings = MailSettings.from_env(env, ENV_TO)
    with notify_lock(paths):
        resent = ledger.resume(paths, [RED_FLAG], settings)
        for r in resent:
            if r.refused:
                raise refused_error(f"{len(r.items)} red-flag alert(s) were", r.recipients, r.refused, ENV_TO)
        alerts = pending_alerts(paths)
        if not alerts:
            return NotifyResult([], resent=len(resent))
        unvalidated = sum(1 for a in alerts if not a["validated"])
        settings.require(f"{len(alerts)} red-flag alert(s) ({unvalidated} UNVALIDATED)")
        ids = [str(a["alert_id"]) for a in alerts]
        msg = compose(subject_for(alerts, study.study_id), body_for(alerts, study.study_id), settings,
                      message_id(RED_FLAG, ids, settings.recipients, settings.sender))
        accepted = ledger.deliver(paths, RED_FLAG, ids, msg, settings)
    refused = [r for r in settings.recipients if r not in accepted]
    if refused:
        raise refused_error(f"{len(ids)} red-flag alert(s) were", accepted, refused, ENV_TO)
    return NotifyResult(ids, unvalidated, accepted, str(msg["Subject"]), len(resent))
