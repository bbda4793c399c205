"""SIGKILL of `trialpipe notify` at each step of a delivery, then a rerun: no alert skipped, none in two messages.

The SMTP server (aiosmtpd on loopback) counts what it received. A kill after the server accepted the
message but before the ledger recorded it makes the rerun hand the same message over again, byte for byte
with the same Message-ID: one distinct message (docs/airflow.md, "Once, and recorded").
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.notify import ENV_VARS, notified_ids, pending_alerts
from pipeline.notify.ledger import unfinished
from pipeline.store.alerts import append_alerts
from pipeline.store.warehouse import writer_lock
from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow

CONTACT = 'contact_email = "coordinator@nl01.example.org"\n'


def notify(dep: Deployment, sink: SmtpSink, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "TRIALPIPE_CRASH_AT"}
    env.update(sink.env())
    if crash_at:
        env["TRIALPIPE_CRASH_AT"] = crash_at
    args = [sys.executable, "-m", "pipeline.cli", "notify", "--study", str(dep.paths.study),
            "--landing", str(dep.paths.landing), "--warehouse", str(dep.paths.warehouse)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def alerts_in(body: str) -> list[str]:
    return re.findall(r"alert_id ([0-9a-f]{20})", body)


def assert_each_alert_in_exactly_one_message(dep: Deployment, sink: SmtpSink) -> None:
    all_ids = {r[0] for r in dep.q("SELECT alert_id FROM alerts")}
    covered = [a for m in sink.distinct().values() for a in alerts_in(m.body)]
    assert sorted(covered) == sorted(all_ids), "every alert in exactly one distinct message"
    assert notified_ids(dep.paths) == all_ids and pending_alerts(dep.paths) == []
    assert unfinished(dep.paths, ["red_flag"]) == {}


# (crash point, the server has the message before the rerun)
POINTS = [
    ("before_rename:1", False),  # writing the intent: nothing recorded, nothing sent
    ("notify_before_send", False),  # intent recorded, not sent
    ("notify_after_send", True),  # the server accepted it, the ledger does not know
    ("before_rename:2", True),  # writing the sent record
]


@pytest.mark.parametrize(("point", "accepted"), POINTS)
def test_sigkill_during_notify_then_rerun_mails_every_alert_in_one_distinct_message(
        dep: Deployment, sink: SmtpSink, point: str, accepted: bool) -> None:
    killed = notify(dep, sink, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(sink.messages) == (1 if accepted else 0)
    rerun = notify(dep, sink)
    assert rerun.returncode == 0, rerun.stderr
    assert len(sink.distinct()) == 1
    assert len(sink.messages) == (2 if accepted else 1)  # a resend is the same message, not a new one
    if accepted:
        first, again = sink.messages
        assert first.data == again.data and "sent 1 interrupted message(s) again" in rerun.stdout
    assert_each_alert_in_exactly_one_message(dep, sink)
    assert notify(dep, sink).stdout.startswith("red-flag notification: no alert pending")
    assert len(sink.messages) == (2 if accepted else 1)


def test_an_alert_raised_after_the_kill_goes_in_a_message_of_its_own(dep: Deployment, sink: SmtpSink) -> None:
    assert notify(dep, sink, "notify_after_send").returncode == -signal.SIGKILL
    with writer_lock(dep.paths):
        append_alerts(dep.paths, [{"site_id": "NL01", "patient_id": "P1", "event_id": "E2", "flag": "MOTOR",
                                   "occurred_at": None, "message": "motor decline"}], source="derive")
    assert notify(dep, sink).returncode == 0
    distinct = list(sink.distinct().values())
    assert len(distinct) == 2 and len(alerts_in(distinct[0].body)) == 3 and len(alerts_in(distinct[1].body)) == 1
    assert "MOTOR" in distinct[1].body and "BLADDER" not in distinct[1].body
    assert_each_alert_in_exactly_one_message(dep, sink)


def test_an_interrupted_message_is_not_lost_while_the_server_is_down(dep: Deployment, sink: SmtpSink) -> None:
    assert notify(dep, sink, "notify_before_send").returncode == -signal.SIGKILL
    down = SmtpSink(port=sink.port + 1 if sink.port < 65535 else 1)  # nothing listens there
    failed = notify(dep, down)
    assert failed.returncode != 0 and not sink.messages
    # the connection was refused, so the message surely did not arrive: its alerts are pending again
    assert len(pending_alerts(dep.paths)) == 3 and notified_ids(dep.paths) == set()
    assert notify(dep, sink).returncode == 0
    assert len(sink.messages) == 1
    assert_each_alert_in_exactly_one_message(dep, sink)


def test_sigkill_after_a_site_mail_was_accepted_resends_it_alone(tmp_path: Path, sink: SmtpSink) -> None:
    dep = make_deployment(tmp_path / "s")
    text = dep.paths.study.read_text().replace('name = "Leiden"\n', 'name = "Leiden"\n' + CONTACT)
    dep.paths.study.write_text(text)
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14)])
    dep.ingest()
    killed = notify(dep, sink, "notify_after_send")  # no red flag pending: the site mail is the first message
    assert killed.returncode == -signal.SIGKILL and len(sink.messages) == 1
    assert notify(dep, sink).returncode == 0
    assert len(sink.messages) == 2 and len(sink.distinct()) == 1
    assert sink.messages[0].data == sink.messages[1].data
    assert notify(dep, sink).returncode == 0 and len(sink.messages) == 2
