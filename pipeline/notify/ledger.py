"""The notification ledger: every message is recorded as intended before it is sent, and as sent after.

`<warehouse>/notifications/<time>-<uuid>.parquet` is append-only; each file holds the rows of one
record: the items a message covers (`item_id`: an alert id, a query id, `report:<week>`, `dq:<site>:...`),
its `kind`, its deterministic `message_id`, `status` (`intent`, `sent`, or `failed` when the server
refused it outright), the recipients and the time.
The message itself is kept, byte for byte, in `notifications/outgoing/<digest>.eml`.

`deliver` writes the .eml, then the intent, then hands the message to SMTP, then records it as sent.
A run killed anywhere in between leaves an intent without a sent record: the next run (`resume`)
sends the same bytes again, with the same Message-ID, before it composes anything new. So nothing
pending is ever skipped. When the kill fell between the SMTP server's acceptance and the record, the
recipients get the message twice, identical and with one Message-ID, which mail clients show once.
That is the clinically safer choice: SMTP cannot tell whether a message arrived, and a red flag must
never be skipped. Items of an intent are never composed into a second message.

Files written before intents existed (columns alert_id, channel, recipients, sent_at) read as sent
red-flag records.
"""

from __future__ import annotations

import email.policy
import hashlib
import smtplib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.config import Paths
from pipeline.notify.mail import MailSettings, NotificationError, send
from pipeline.store.crash import crashpoint
from pipeline.store.files import atomic_write_bytes, atomic_write_parquet

CHANNEL = "email"
RED_FLAG = "red_flag"
SITE_QUERIES = "site_queries"
REPORT = "report"
DQ_FLAG = "dq_flag"

LEDGER_SCHEMA = pa.schema([
    ("alert_id", pa.string()),  # the alert (red flags only; the only key of files written before item_id)
    ("channel", pa.string()),
    ("recipients", pa.string()),  # comma-separated: intended (intent), accepted by the server (sent)
    ("sent_at", pa.timestamp("us", tz="UTC")),  # when the row was recorded
    ("kind", pa.string()),
    ("item_id", pa.string()),
    ("message_id", pa.string()),
    ("status", pa.string()),  # intent | sent | failed (the server refused it: pending again)
])


@dataclass(frozen=True)
class Entry:
    kind: str
    item_id: str
    message_id: str
    status: str
    recipients: tuple[str, ...]
    at: datetime


def entries(paths: Paths) -> list[Entry]:
    """Every ledger row, in file order (older files: sent red-flag records)."""
    files = sorted(str(p) for p in paths.notifications_dir.glob("*.parquet")) if paths.notifications_dir.exists() \
        else []
    if not files:
        return []
    table = ds.dataset(files, schema=LEDGER_SCHEMA, format="parquet").to_table()
    kind = pc.fill_null(table["kind"], RED_FLAG)
    item = pc.coalesce(table["item_id"], table["alert_id"])
    status = pc.fill_null(table["status"], "sent")
    msg = pc.fill_null(table["message_id"], "")
    return [Entry(k, i, m, s, tuple(r for r in (rc or "").split(",") if r), at)
            for k, i, m, s, rc, at in zip(kind.to_pylist(), item.to_pylist(), msg.to_pylist(), status.to_pylist(),
                                          table["recipients"].to_pylist(), table["sent_at"].to_pylist(), strict=True)]


def states(rows: Sequence[Entry]) -> dict[str, str]:
    """Each message's last status: sent, intent (open: to be resent) or failed (refused: never delivered)."""
    return {e.message_id: e.status for e in rows}


def covered(paths: Paths, kind: str) -> set[str]:
    """Items of `kind` that a message covers (sent, or intended and to be resent): never composed again."""
    rows = entries(paths)
    last = states(rows)
    return {e.item_id for e in rows if e.kind == kind and (e.status == "sent" or last[e.message_id] == "intent")}


def sent_items(paths: Paths, kind: str) -> set[str]:
    return {e.item_id for e in entries(paths) if e.kind == kind and e.status == "sent"}


def last_sent(paths: Paths, kind: str) -> datetime | None:
    times = [e.at for e in entries(paths) if e.kind == kind and e.status == "sent"]
    return max(times) if times else None


def record(paths: Paths, kind: str, items: Sequence[str], msg_id: str, status: str,
           recipients: Sequence[str]) -> Path:
    """Append one ledger file: the items of one message, as intended or as sent."""
    at = datetime.now(UTC)
    rows = [{"alert_id": i if kind == RED_FLAG else None, "channel": CHANNEL, "recipients": ",".join(recipients),
             "sent_at": at, "kind": kind, "item_id": i, "message_id": msg_id, "status": status} for i in items]
    path = paths.notifications_dir / f"{at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex}.parquet"
    atomic_write_parquet(pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA), path)
    return path


def outgoing_path(paths: Paths, msg_id: str) -> Path:
    return paths.notifications_dir / "outgoing" / f"{hashlib.sha256(msg_id.encode()).hexdigest()[:32]}.eml"


def _send_recorded(paths: Paths, kind: str, items: Sequence[str], msg_id: str, raw: bytes,
                   settings: MailSettings, recipients: Sequence[str]) -> tuple[str, ...]:
    crashpoint("notify_before_send")
    try:
        accepted = send(raw, settings, recipients)
    except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, ConnectionRefusedError):
        # the server said no (or was not there): not delivered, so the items are pending again
        record(paths, kind, items, msg_id, "failed", ())
        raise
    # any other error (a timeout, a dropped connection) may follow the server's acceptance: the intent stays
    crashpoint("notify_after_send")
    record(paths, kind, items, msg_id, "sent", accepted)
    return accepted


def deliver(paths: Paths, kind: str, items: Sequence[str], msg: EmailMessage,
            settings: MailSettings) -> tuple[str, ...]:
    """Keep the message, record the intent, send, record it sent; the recipients the server accepted.

    The caller holds the notify lock, has checked `settings.require(...)`, and raises for refused ones.
    """
    msg_id = str(msg["Message-ID"])
    raw = msg.as_bytes(policy=email.policy.SMTP)
    atomic_write_bytes(raw, outgoing_path(paths, msg_id))
    record(paths, kind, items, msg_id, "intent", settings.recipients)
    return _send_recorded(paths, kind, items, msg_id, raw, settings, settings.recipients)


@dataclass(frozen=True)
class Resent:
    kind: str
    items: tuple[str, ...]
    message_id: str
    recipients: tuple[str, ...]
    refused: tuple[str, ...]


def unfinished(paths: Paths, kinds: Sequence[str]) -> dict[str, list[Entry]]:
    """Intents of `kinds` without a sent record, by message_id, in the order they were recorded."""
    rows = entries(paths)
    last = states(rows)
    out: dict[str, list[Entry]] = {}
    for e in rows:
        if e.status == "intent" and e.kind in kinds and last[e.message_id] == "intent":
            out[e.message_id] = [x for x in out.get(e.message_id, []) if x.at == e.at] + [e]
    return out


def resume(paths: Paths, kinds: Sequence[str], settings: MailSettings) -> list[Resent]:
    """Send again, byte for byte, every message that was intended but not recorded as sent."""
    out = []
    for msg_id, rows in unfinished(paths, kinds).items():
        kind, items, recipients = rows[0].kind, tuple(e.item_id for e in rows), rows[0].recipients
        settings.to(recipients, "the ledger").require(f"an interrupted {kind} message ({len(items)} item(s))")
        raw_path = outgoing_path(paths, msg_id)
        if not raw_path.exists():
            raise NotificationError(f"the interrupted {kind} message {msg_id} is missing its copy {raw_path}")
        accepted = _send_recorded(paths, kind, items, msg_id, raw_path.read_bytes(), settings, recipients)
        out.append(Resent(kind, items, msg_id, accepted, tuple(r for r in recipients if r not in accepted)))
    return out
