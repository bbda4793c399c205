"""`make airflow`'s local mail catcher (deploy/airflow-local.sh): aiosmtpd on loopback, one file per message."""

from __future__ import annotations

import mailbox
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from pipeline.notify import notify_red_flags
from pipeline.store.alerts import append_alerts
from pipeline.store.warehouse import writer_lock
from tests.ingest.helpers import make_deployment

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "airflow-local.sh"


def catcher_command(port: int, mail_dir: Path) -> list[str]:
    """The catcher's command line as the script runs it, with its variables filled in."""
    line = next(line for line in SCRIPT.read_text().splitlines() if "aiosmtpd.handlers.Mailbox" in line)
    line = line.strip().rstrip("\\").strip()
    line = line.replace("$TRIALPIPE_SMTP_PORT", str(port)).replace("$mail_dir", str(mail_dir))
    args = shlex.split(line)
    assert args[:3] == ["python", "-m", "aiosmtpd"] and f"127.0.0.1:{port}" in args, args
    return [sys.executable, *args[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_the_local_catcher_saves_each_message_and_the_red_flags_go_through(tmp_path: Path) -> None:
    dep = make_deployment(tmp_path / "s")
    with writer_lock(dep.paths):
        append_alerts(dep.paths, [{"site_id": "NL01", "patient_id": "P1", "event_id": "E2", "flag": "BLADDER",
                                   "occurred_at": None, "message": "bladder dysfunction"}], source="derive")
    port, mail_dir = free_port(), tmp_path / "mail"
    assert 'mkdir -p "$mail_dir/tmp" "$mail_dir/new" "$mail_dir/cur"' in SCRIPT.read_text()
    for sub in ("tmp", "new", "cur"):
        (mail_dir / sub).mkdir(parents=True)
    proc = subprocess.Popen(catcher_command(port, mail_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(port)
        env = {"TRIALPIPE_SMTP_HOST": "127.0.0.1", "TRIALPIPE_SMTP_PORT": str(port),
               "TRIALPIPE_ALERT_EMAIL_TO": "physician@localhost", "TRIALPIPE_ALERT_EMAIL_FROM": "trialpipe@localhost"}
        assert notify_red_flags(dep.paths, dep.study, env).sent == 1
        deadline = time.monotonic() + 10
        while not list((mail_dir / "new").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    (msg,) = list(mailbox.Maildir(mail_dir))
    assert re.match(r"trialpipe: 1 red-flag alert\(s\) \(0 UNVALIDATED\)", str(msg["Subject"]))
    assert msg["X-RcptTo"] == "physician@localhost"
    script = SCRIPT.read_text()
    for name in ("TRIALPIPE_ALERT_EMAIL_TO", "TRIALPIPE_REPORT_EMAIL_TO", "TRIALPIPE_DQ_EMAIL_TO"):
        assert f'export {name}="${{{name}:-' in script  # every role has a placeholder recipient locally
    assert 'if [[ -z "${TRIALPIPE_SMTP_HOST:-}" ]]; then' in script  # a real server is never overridden
