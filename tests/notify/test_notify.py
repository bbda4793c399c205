"""Red-flag notification: every pending alert is mailed once, over real SMTP on loopback, and recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.notify import ENV_HOST, ENV_TO, NotificationError, notified_ids, notify_red_flags
from pipeline.store.alerts import append_alerts
from pipeline.store.warehouse import writer_lock
from tests.ingest.helpers import Deployment, make_deployment
from tests.smtp_sink import SmtpSink


def test_pending_alerts_are_mailed_once_in_one_message_unvalidated_first(dep: Deployment, sink: SmtpSink) -> None:
    result = notify_red_flags(dep.paths, dep.study, sink.env())
    assert (result.sent, result.unvalidated) == (3, 1)
    (mail,) = sink.messages
    assert mail.rcpt_to == ["physician@example.org", "safety@example.org"]
    assert mail.mail_from == "trialpipe@example.org"
    assert mail.subject == "trialpipe: 3 red-flag alert(s) (1 UNVALIDATED) – TEST-01"
    body = mail.body
    first = body.index("1. BLADDER [UNVALIDATED - contact the site today]")
    assert first < body.index("SADDLE [validated]") and first < body.index("BOWEL [validated]")
    for text in ("site:        NL01", "site:        NL02", "patient:     P9", "event_id:    E2",
                 "event_id:    F1", "occurred at: 2026-01-05 09:00 UTC", "message:"):
        assert text in body
    alert_ids = {r[0] for r in dep.q("SELECT alert_id FROM alerts")}
    assert notified_ids(dep.paths) == alert_ids == set(result.alert_ids)
    intent, sent = sorted(dep.paths.notifications_dir.glob("*.parquet"))  # intended first, then sent
    import pyarrow.parquet as pq

    for path, status in ((intent, "intent"), (sent, "sent")):
        rows = pq.read_table(path).to_pylist()
        assert {(r["channel"], r["kind"], r["status"], r["message_id"]) for r in rows} == {
            ("email", "red_flag", status, mail.message_id)}
        assert {r["recipients"] for r in rows} == {"physician@example.org,safety@example.org"}
        assert {r["item_id"] for r in rows} == {r["alert_id"] for r in rows} == alert_ids
    # a second run finds nothing pending and sends nothing
    assert notify_red_flags(dep.paths, dep.study, sink.env()).sent == 0
    assert len(sink.messages) == 1


def test_a_new_alert_is_mailed_alone_afterwards(dep: Deployment, sink: SmtpSink) -> None:
    notify_red_flags(dep.paths, dep.study, sink.env())
    with writer_lock(dep.paths):
        append_alerts(dep.paths, [{"site_id": "NL01", "patient_id": "P1", "event_id": "E2", "flag": "MOTOR",
                                   "occurred_at": None, "message": "motor decline"}], source="derive")
    result = notify_red_flags(dep.paths, dep.study, sink.env())
    assert (result.sent, result.unvalidated) == (1, 0)
    assert sink.messages[-1].subject.startswith("trialpipe: 1 red-flag alert(s) (0 UNVALIDATED)")
    assert "MOTOR [validated]" in sink.messages[-1].body and "raised by derive" in sink.messages[-1].body
    assert "BLADDER" not in sink.messages[-1].body


def test_unconfigured_with_pending_alerts_fails_naming_the_variables(dep: Deployment, sink: SmtpSink) -> None:
    with pytest.raises(NotificationError, match=f"{ENV_TO} and {ENV_HOST}") as err:
        notify_red_flags(dep.paths, dep.study, {})
    assert "3 red-flag alert(s) (1 UNVALIDATED)" in str(err.value)
    with pytest.raises(NotificationError, match=ENV_HOST):
        notify_red_flags(dep.paths, dep.study, {ENV_TO: "physician@example.org"})
    assert notified_ids(dep.paths) == set() and not sink.messages
    assert notify_red_flags(dep.paths, dep.study, sink.env()).sent == 3  # configured: all of them go out


def test_unconfigured_with_nothing_pending_succeeds(tmp_path: Path, dep: Deployment, sink: SmtpSink) -> None:
    empty = make_deployment(tmp_path / "empty")
    assert notify_red_flags(empty.paths, empty.study, {}).sent == 0
    notify_red_flags(dep.paths, dep.study, sink.env())
    assert notify_red_flags(dep.paths, dep.study, {}).sent == 0  # all notified: nothing to deliver


def test_a_failed_send_records_nothing_and_the_next_run_sends_again(dep: Deployment, sink: SmtpSink) -> None:
    import smtplib

    sink.fail_data = True
    with pytest.raises(smtplib.SMTPException):
        notify_red_flags(dep.paths, dep.study, sink.env())
    assert notified_ids(dep.paths) == set()
    sink.fail_data = False
    assert notify_red_flags(dep.paths, dep.study, sink.env()).sent == 3
    assert len(sink.messages) == 1


def test_a_refused_recipient_fails_the_run_after_the_others_got_it(dep: Deployment, sink: SmtpSink) -> None:
    sink.refuse = {"gone@example.org"}
    env = sink.env(to="physician@example.org, gone@example.org")
    with pytest.raises(NotificationError, match=r"refused gone@example\.org"):
        notify_red_flags(dep.paths, dep.study, env)
    assert [m.rcpt_to for m in sink.messages] == [["physician@example.org"]]
    assert len(notified_ids(dep.paths)) == 3  # the physician has them: not mailed again
    assert notify_red_flags(dep.paths, dep.study, env).sent == 0


def run_cli(dep: Deployment, env: dict[str, str]) -> tuple[int, str, str]:
    where = ["--study", str(dep.paths.study), "--landing", str(dep.paths.landing),
             "--warehouse", str(dep.paths.warehouse)]
    result = CliRunner().invoke(main, ["notify", *where], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_cli_notify(dep: Deployment, sink: SmtpSink) -> None:
    code, _, err = run_cli(dep, {})
    assert code == 1 and err.startswith("trialpipe: 3 red-flag alert(s)") and ENV_TO in err
    assert len(err.splitlines()) == 1
    code, out, _ = run_cli(dep, sink.env())
    assert code == 0 and "mailed 3 alert(s) (1 UNVALIDATED)" in out
    code, out, _ = run_cli(dep, {})
    assert code == 0 and "no alert pending" in out
    assert len(sink.messages) == 1


def test_a_ledger_written_before_intents_existed_still_counts_as_sent(dep: Deployment, sink: SmtpSink) -> None:
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    old_schema = pa.schema([("alert_id", pa.string()), ("channel", pa.string()), ("recipients", pa.string()),
                            ("sent_at", pa.timestamp("us", tz="UTC"))])
    first = next(iter(sorted(r[0] for r in dep.q("SELECT alert_id FROM alerts"))))
    dep.paths.notifications_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"alert_id": first, "channel": "email", "recipients": "old@example.org",
                                          "sent_at": datetime(2026, 1, 5, tzinfo=UTC)}], schema=old_schema),
                   dep.paths.notifications_dir / "20260105T000000000000-old.parquet")
    assert notified_ids(dep.paths) == {first}
    result = notify_red_flags(dep.paths, dep.study, sink.env())
    assert result.sent == 2 and first not in result.alert_ids
