"""A tiny real SMTP server on loopback for the notification tests (no mock of smtplib).

It speaks enough of RFC 5321 for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT. Every message it
accepts is kept in `messages`. `refuse` names recipients it answers 550; `fail_data` makes it answer 554
to the end of DATA (the message is then not accepted).
"""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage


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
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    fail_data: bool = False

    def env(self, to: str = "physician@example.org,safety@example.org") -> dict[str, str]:
        return {"TRIALPIPE_ALERT_EMAIL_TO": to, "TRIALPIPE_ALERT_EMAIL_FROM": "trialpipe@example.org",
                "TRIALPIPE_SMTP_HOST": self.host, "TRIALPIPE_SMTP_PORT": str(self.port)}


def _address(arg: str) -> str:
    start, end = arg.find("<"), arg.find(">")
    return arg[start + 1:end] if 0 <= start < end else arg.split(":", 1)[-1].strip()


def _handler(sink: SmtpSink) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")
            self.wfile.flush()

        def handle(self) -> None:
            self.reply("220 sink ESMTP")
            mail_from, rcpts = "", list[str]()
            while raw := self.rfile.readline():
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    self.reply("250-sink")
                    self.reply("250 8BITMIME")
                elif verb == "HELO":
                    self.reply("250 sink")
                elif verb == "MAIL":
                    mail_from, rcpts = _address(arg), []
                    self.reply("250 OK")
                elif verb == "RCPT":
                    address = _address(arg)
                    if address in sink.refuse:
                        self.reply("550 no such user")
                    else:
                        rcpts.append(address)
                        self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while (data := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                        lines.append(data[1:] if data.startswith(b"..") else data)
                    if sink.fail_data:
                        self.reply("554 transaction failed")
                    else:
                        sink.messages.append(Received(mail_from, rcpts, b"".join(lines)))
                        self.reply("250 OK queued")
                elif verb in ("RSET", "NOOP"):
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 command not implemented")

    return Handler


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """A running sink on a free loopback port."""
    sink = SmtpSink()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(sink))
    server.daemon_threads = True
    sink.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
