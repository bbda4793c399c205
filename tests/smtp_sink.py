"""A real SMTP server on loopback for the notification tests: aiosmtpd (no mock of smtplib).

Every message the server accepts is kept in `messages`, parsed on demand. `refuse` names recipients
it answers 550 to; `fail_data` makes it answer 554 to the end of DATA (the message is then not accepted).
`pytest` fixtures use `smtp_sink()`; DAG tests point the mail variables at it with `env()`.
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

PHYSICIANS = "physician@example.org,safety@example.org"
STUDY_TEAM = "team@example.org"
DATA_MANAGER = "dm@example.org"


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    def attachments(self) -> dict[str, tuple[str, bytes]]:
        """file name → (content type, bytes)."""
        out = {}
        for part in self.message.iter_attachments():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[str(part.get_filename())] = (part.get_content_type(), payload)
        return out


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    fail_data: bool = False

    def env(self, to: str = PHYSICIANS) -> dict[str, str]:
        return {"TRIALPIPE_ALERT_EMAIL_TO": to, "TRIALPIPE_ALERT_EMAIL_FROM": "trialpipe@example.org",
                "TRIALPIPE_REPORT_EMAIL_TO": STUDY_TEAM, "TRIALPIPE_DQ_EMAIL_TO": DATA_MANAGER,
                "TRIALPIPE_SMTP_HOST": self.host, "TRIALPIPE_SMTP_PORT": str(self.port)}

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_to]

    def distinct(self) -> dict[str, Received]:
        """Messages by Message-ID: a message handed over twice (a resend after a kill) counts once."""
        return {m.message_id: m for m in self.messages}


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.sink.refuse:
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.fail_data:
            return "554 transaction failed"
        self.sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK queued"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on a free loopback port, stopped afterwards."""
    sink = SmtpSink(port=_free_port())
    controller = Controller(_Handler(sink), hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
