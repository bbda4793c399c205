"""Red-flag notification: every alert not yet notified goes out by e-mail, once, the same day.

"Every red flag reaches a physician the same day" (developer guide; DTS §5 "Safety first"). Alerts are
raised by ingest (also for rejected rows, as UNVALIDATED) and by derive; this module mails those that no
notification has covered yet: ONE plain-text message per run listing every pending alert, unvalidated
first, over SMTP (standard library), to the recipients configured in the environment.

The notification ledger `<warehouse>/notifications/<timestamp>-<uuid>.parquet` is append-only: each run
that sent a message writes one new file (atomically) naming the alerts it covered. A run records only
after the SMTP server accepted the message, so delivery is at-least-once, never at-most-once: a crash
between the send and the record means the next run mails those alerts again. Runs take a lock of their own
(`locks/notify.lock`, not the writer lock) so that two runs at once (ingest_sites and derive_outcomes) do
not both mail the same alerts; where the file system ignores locks, the worst case is a duplicate mail.

Alerts that are pending while no recipient or SMTP host is configured raise `NotificationError`: an alert
that cannot be delivered must turn the task red. Alerts hold no PHI (site, patient code, flag, times, event
id, a rule's message), and the message holds nothing else.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from filelock import FileLock

from pipeline.config import Paths, Study
from pipeline.store.files import atomic_write_parquet
from pipeline.store.warehouse import dataset_sql, parquet_sql

ENV_TO = "TRIALPIPE_ALERT_EMAIL_TO"
ENV_FROM = "TRIALPIPE_ALERT_EMAIL_FROM"
ENV_HOST = "TRIALPIPE_SMTP_HOST"
ENV_PORT = "TRIALPIPE_SMTP_PORT"
ENV_USER = "TRIALPIPE_SMTP_USER"
ENV_PASSWORD = "TRIALPIPE_SMTP_PASSWORD"  # the name of a variable, not a password
ENV_STARTTLS = "TRIALPIPE_SMTP_STARTTLS"
ENV_VARS = (ENV_TO, ENV_FROM, ENV_HOST, ENV_PORT, ENV_USER, ENV_PASSWORD, ENV_STARTTLS)

CHANNEL = "email"
SMTP_TIMEOUT_S = 60
LOCK_TIMEOUT_S = 600

NOTIFICATION_SCHEMA = pa.schema([
    ("alert_id", pa.string()),
    ("channel", pa.string()),
    ("recipients", pa.string()),  # comma-separated addresses the server accepted
    ("sent_at", pa.timestamp("us", tz="UTC")),
])


class NotificationError(RuntimeError):
    """Pending red-flag alerts could not be delivered (not configured, or recipients refused)."""


@dataclass(frozen=True)
class MailSettings:
    recipients: tuple[str, ...] = ()
    sender: str = ""
    host: str = ""
    port: int = 25
    user: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MailSettings:
        env = os.environ if env is None else env
        recipients = tuple(a.strip() for a in env.get(ENV_TO, "").split(",") if a.strip())
        port_text = env.get(ENV_PORT, "").strip() or "25"
        try:
            port = int(port_text)
        except ValueError as exc:
            raise NotificationError(f"{ENV_PORT}={port_text!r} is not a port number") from exc
        starttls = env.get(ENV_STARTTLS, "").strip().lower() in ("1", "true", "yes", "on")
        sender = env.get(ENV_FROM, "").strip() or f"trialpipe@{socket.getfqdn()}"
        return cls(recipients, sender, env.get(ENV_HOST, "").strip(), port, env.get(ENV_USER, "").strip(),
                   env.get(ENV_PASSWORD, ""), starttls)

    def missing(self) -> list[str]:
        """The variables that must be set before a red flag can be mailed."""
        return [name for name, value in ((ENV_TO, self.recipients), (ENV_HOST, self.host)) if not value]


@dataclass
class NotifyResult:
    alert_ids: list[str]
    unvalidated: int = 0
    recipients: tuple[str, ...] = ()
    subject: str = ""

    @property
    def sent(self) -> int:
        return len(self.alert_ids)

    def describe(self) -> str:
        if not self.alert_ids:
            return "red-flag notification: no alert pending"
        return (f"red-flag notification: mailed {self.sent} alert(s) ({self.unvalidated} UNVALIDATED) "
                f"to {', '.join(self.recipients)}: {self.subject}")

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "unvalidated": self.unvalidated, "recipients": list(self.recipients),
                "alert_ids": self.alert_ids}


def _ledger_sql(paths: Paths) -> str:
    return parquet_sql(paths.notifications_dir.resolve(), "*.parquet", NOTIFICATION_SCHEMA)


def notified_ids(paths: Paths) -> set[str]:
    """Alert ids that a notification has covered."""
    return {r[0] for r in duckdb.connect().execute(_ledger_sql(paths)).fetchall()}


def pending_alerts(paths: Paths) -> list[dict[str, Any]]:
    """Alerts no notification has covered: unvalidated first, then in the order they were raised."""
    sql = f"""
        SELECT alert_id, site_id, patient_id, event_id, flag, validated, source, message,
               strftime(timezone('UTC', occurred_at), '%Y-%m-%d %H:%M UTC') AS occurred,
               strftime(timezone('UTC', raised_at), '%Y-%m-%d %H:%M UTC') AS raised
        FROM ({dataset_sql(paths, 'alerts')}) AS a
        WHERE NOT EXISTS (SELECT 1 FROM ({_ledger_sql(paths)}) AS n WHERE n.alert_id = a.alert_id)
        QUALIFY row_number() OVER (PARTITION BY alert_id ORDER BY raised_at) = 1
        ORDER BY validated, raised_at, site_id, patient_id NULLS LAST, occurred_at, event_id, flag
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _text(value: Any) -> str:
    """A value on one line of the message: no control characters from a rejected row."""
    if value is None:
        return "(none)"
    return "".join(c if c.isprintable() else " " for c in str(value)).strip() or "(empty)"


def subject_for(alerts: Sequence[Mapping[str, Any]], study_id: str) -> str:
    unvalidated = sum(1 for a in alerts if not a["validated"])
    return f"trialpipe: {len(alerts)} red-flag alert(s) ({unvalidated} UNVALIDATED) – {_text(study_id)}"


def body_for(alerts: Sequence[Mapping[str, Any]], study_id: str) -> str:
    unvalidated = sum(1 for a in alerts if not a["validated"])
    lines = [
        f"Study {_text(study_id)}: {len(alerts)} red-flag alert(s) not notified before, "
        f"{unvalidated} of them UNVALIDATED.",
        "Every red flag must reach a physician today (DTS section 5, \"Safety first\").",
        "",
        "UNVALIDATED: the row failed validation, so its values are unconfirmed - contact the site today.",
        "",
    ]
    for n, a in enumerate(alerts, 1):
        status = "UNVALIDATED - contact the site today" if not a["validated"] else "validated"
        lines += [
            f"{n}. {_text(a['flag'])} [{status}]",
            f"   site:        {_text(a['site_id'])}",
            f"   patient:     {_text(a['patient_id'])}",
            f"   occurred at: {_text(a['occurred'])}",
            f"   event_id:    {_text(a['event_id'])}",
            f"   message:     {_text(a['message'])}",
            f"   raised by {_text(a['source'])} at {_text(a['raised'])}; alert_id {_text(a['alert_id'])}",
            "",
        ]
    lines.append("Sent by trialpipe once per alert; the alerts table of the warehouse holds them all.")
    return "\n".join(lines) + "\n"


def compose(alerts: Sequence[Mapping[str, Any]], study_id: str, settings: MailSettings) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject_for(alerts, study_id)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    msg.set_content(body_for(alerts, study_id))
    return msg


def send(msg: EmailMessage, settings: MailSettings) -> tuple[str, ...]:
    """Hand the message to the SMTP server; the recipients it accepted (raises if it took none)."""
    with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_S) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password)
        refused = smtp.send_message(msg, from_addr=settings.sender, to_addrs=list(settings.recipients))
    return tuple(r for r in settings.recipients if r not in refused)


def record(paths: Paths, alert_ids: Sequence[str], recipients: Sequence[str], sent_at: datetime) -> Path:
    """Append one ledger file naming the alerts a sent message covered."""
    rows = [{"alert_id": i, "channel": CHANNEL, "recipients": ",".join(recipients), "sent_at": sent_at}
            for i in alert_ids]
    path = paths.notifications_dir / f"{sent_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex}.parquet"
    atomic_write_parquet(pa.Table.from_pylist(rows, schema=NOTIFICATION_SCHEMA), path)
    return path


def notify_red_flags(paths: Paths, study: Study, env: Mapping[str, str] | None = None) -> NotifyResult:
    """Mail every pending red-flag alert in one message and record it; raise when that is impossible."""
    settings = MailSettings.from_env(env)
    paths.locks_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.locks_dir / "notify.lock"), timeout=LOCK_TIMEOUT_S):
        alerts = pending_alerts(paths)
        if not alerts:
            return NotifyResult([])
        unvalidated = sum(1 for a in alerts if not a["validated"])
        if settings.missing():
            raise NotificationError(
                f"{len(alerts)} red-flag alert(s) ({unvalidated} UNVALIDATED) cannot be mailed: set "
                f"{' and '.join(settings.missing())} (optional: {ENV_FROM}, {ENV_PORT} (default 25), "
                f"{ENV_USER}, {ENV_PASSWORD}, {ENV_STARTTLS}); the alerts stay pending until they are mailed")
        msg = compose(alerts, study.study_id, settings)
        accepted = send(msg, settings)  # raises (smtplib.SMTPException, OSError) when nothing was accepted
        ids = [str(a["alert_id"]) for a in alerts]
        record(paths, ids, accepted, datetime.now(UTC))
    refused = [r for r in settings.recipients if r not in accepted]
    if refused:
        raise NotificationError(
            f"{len(ids)} red-flag alert(s) were mailed to {', '.join(accepted)}, but the SMTP server refused "
            f"{', '.join(refused)}: check {ENV_TO}")
    return NotifyResult(ids, unvalidated, accepted, str(msg["Subject"]))


def notify_task() -> dict[str, Any]:
    """The body of the DAGs' `notify_red_flags` tasks: the deployment's study from the environment."""
    from pipeline.config import load_study, paths_from_env

    paths = paths_from_env()
    result = notify_red_flags(paths, load_study(paths.study))
    print(result.describe())
    return result.to_dict()
