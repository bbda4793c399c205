"""Mail over SMTP (standard library): the settings from the environment, one message, one hand-over.

Every role has its own recipients variable (red flags: the physicians; reports: the study team;
data-quality flags: the data manager; a site's contact comes from study.toml) and shares one SMTP
server. A message's Message-ID is derived from what it covers, so a message composed again for the
same items carries the same id (pipeline.notify.ledger relies on it). Nothing here stores anything.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

ENV_TO = "TRIALPIPE_ALERT_EMAIL_TO"
ENV_REPORT_TO = "TRIALPIPE_REPORT_EMAIL_TO"
ENV_DQ_TO = "TRIALPIPE_DQ_EMAIL_TO"
ENV_FROM = "TRIALPIPE_ALERT_EMAIL_FROM"
ENV_HOST = "TRIALPIPE_SMTP_HOST"
ENV_PORT = "TRIALPIPE_SMTP_PORT"
ENV_USER = "TRIALPIPE_SMTP_USER"
ENV_PASSWORD = "TRIALPIPE_SMTP_PASSWORD"  # the name of a variable, not a password
ENV_STARTTLS = "TRIALPIPE_SMTP_STARTTLS"
ENV_VARS = (ENV_TO, ENV_REPORT_TO, ENV_DQ_TO, ENV_FROM, ENV_HOST, ENV_PORT, ENV_USER, ENV_PASSWORD, ENV_STARTTLS)
OPTIONAL = f"optional: {ENV_FROM}, {ENV_PORT} (default 25), {ENV_USER}, {ENV_PASSWORD}, {ENV_STARTTLS}"

SMTP_TIMEOUT_S = 60


class NotificationError(RuntimeError):
    """Something pending could not be mailed (not configured, or recipients refused)."""


@dataclass(frozen=True)
class MailSettings:
    recipients: tuple[str, ...] = ()
    sender: str = ""
    host: str = ""
    port: int = 25
    user: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False
    to_var: str = ENV_TO  # where the recipients came from (named in errors)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, to_var: str = ENV_TO) -> MailSettings:
        env = os.environ if env is None else env
        recipients = tuple(a.strip() for a in env.get(to_var, "").split(",") if a.strip())
        port_text = env.get(ENV_PORT, "").strip() or "25"
        try:
            port = int(port_text)
        except ValueError as exc:
            raise NotificationError(f"{ENV_PORT}={port_text!r} is not a port number") from exc
        starttls = env.get(ENV_STARTTLS, "").strip().lower() in ("1", "true", "yes", "on")
        sender = env.get(ENV_FROM, "").strip() or f"trialpipe@{socket.getfqdn()}"
        return cls(recipients, sender, env.get(ENV_HOST, "").strip(), port, env.get(ENV_USER, "").strip(),
                   env.get(ENV_PASSWORD, ""), starttls, to_var)

    def to(self, recipients: Sequence[str], source: str) -> MailSettings:
        """The same server for other recipients (a site's contact from study.toml)."""
        return replace(self, recipients=tuple(recipients), to_var=source)

    def missing(self) -> list[str]:
        """The settings that must be given before anything can be mailed."""
        return [name for name, value in ((self.to_var, self.recipients), (ENV_HOST, self.host)) if not value]

    def require(self, what: str) -> None:
        """Raise, naming the settings, when `what` (something pending) cannot be mailed."""
        if self.missing():
            raise NotificationError(f"{what} cannot be mailed: set {' and '.join(self.missing())} ({OPTIONAL}); "
                                    "it stays pending until it is mailed")


def text(value: object) -> str:
    """A value on one line of a message: no control characters from a rejected row."""
    if value is None:
        return "(none)"
    return "".join(c if c.isprintable() else " " for c in str(value)).strip() or "(empty)"


def message_id(kind: str, items: Sequence[str], recipients: Sequence[str], sender: str) -> str:
    """The same id for the same kind, items and recipients: a message composed again is the same message."""
    digest = hashlib.sha256("\x1f".join([kind, *sorted(items), "\x1e", *sorted(recipients)]).encode()).hexdigest()
    domain = sender.rpartition("@")[2] or "trialpipe.invalid"
    return f"<{kind}.{digest[:32]}@{domain}>"


def compose(subject: str, body: str, settings: MailSettings, msg_id: str,
            attachments: Sequence[Path | tuple[str, bytes]] = ()) -> EmailMessage:
    """A text/plain message, with attachments (files, or (name, bytes)) after the body."""
    msg = EmailMessage()
    msg["Subject"] = text(subject)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = msg_id
    msg.set_content(body)
    for item in attachments:
        name, data = (item.name, item.read_bytes()) if isinstance(item, Path) else item
        maintype, subtype = CONTENT_TYPES.get(Path(name).suffix.lower(), ("application", "octet-stream"))
        if maintype == "text":
            msg.add_attachment(data.decode("utf-8"), subtype=subtype, filename=name)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


CONTENT_TYPES = {".pdf": ("application", "pdf"), ".html": ("text", "html"), ".csv": ("text", "csv")}


def send(raw: bytes, settings: MailSettings, recipients: Sequence[str]) -> tuple[str, ...]:
    """Hand one message (its bytes) to the SMTP server; the recipients it accepted (raises if it took none)."""
    with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_S) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password)
        refused = smtp.sendmail(settings.sender, list(recipients), raw)
    return tuple(r for r in recipients if r not in refused)
