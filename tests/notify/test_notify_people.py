"""Site contacts and the data manager are mailed what they must act on: each once, each only their own.

Real SMTP (aiosmtpd on loopback); the tests parse what the server received.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.notify import ENV_DQ_TO, ENV_HOST, NotificationError, notify_sites
from pipeline.notify.dq import notify_dq_flags
from pipeline.report.dq import dq_monitor
from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom
from tests.smtp_sink import DATA_MANAGER, SmtpSink

NL01 = "coordinator@nl01.example.org"
NL02 = "coordinator@nl02.example.org"


def with_contacts(root: Path) -> Deployment:
    dep = make_deployment(root)
    text = dep.paths.study.read_text()
    text = text.replace('name = "Leiden"\n', f'name = "Leiden"\ncontact_email = "{NL01}"\n')
    text = text.replace('name = "The Hague"\n', f'name = "The Hague"\ncontact_email = "{NL02}"\n')
    dep.paths.study.write_text(text)
    return dep


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sites with contacts and rejected rows (NL01: 2, NL02: 1); copied by each test (as conftest's `dep`)."""
    dep = with_contacts(tmp_path_factory.mktemp("people") / "study")
    dep.deliver("NL01", "leiden-week1.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14),
                                             symptom("E3", leg_pain_nrs=99)])
    dep.deliver("NL02", "hague-week1.csv", [enrollment("E9", patient="P9", site="NL02"),
                                            symptom("E10", patient="P9", site="NL02", back_pain_nrs=-1)])
    dep.ingest()
    return dep.root


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_each_site_contact_gets_its_own_new_queries_and_nothing_of_another_site(
        dep: Deployment, sink: SmtpSink) -> None:
    result = notify_sites(dep.paths, dep.study, sink.env())
    assert result.mailed == {"NL01": 2, "NL02": 1}
    nl01, nl02 = sink.to(NL01), sink.to(NL02)
    assert len(nl01) == len(nl02) == 1 and len(sink.messages) == 2
    for mail, site, other, address, own_file, other_file, n in (
            (nl01[0], "NL01", "NL02", NL01, "NL01/leiden-week1.csv", "NL02/hague-week1.csv", 2),
            (nl02[0], "NL02", "NL01", NL02, "NL02/hague-week1.csv", "NL01/leiden-week1.csv", 1)):
        assert mail.rcpt_to == [address] and mail.message["To"] == address
        assert mail.subject == f"trialpipe: {n} new quer{'y' if n == 1 else 'ies'} for site {site} – TEST-01"
        assert mail.message.get_body(("plain",)).get_content_type() == "text/plain"  # type: ignore[union-attr]
        assert f"site {site}: {n} new" in mail.body and f"  {own_file}: {n}" in mail.body
        (name, (ctype, data)), = mail.attachments().items()
        assert (name, ctype) == ("query_list.csv", "text/csv")
        rows = csv_rows(data)
        assert len(rows) == n and {r["file"] for r in rows} == {own_file}
        assert other.encode() not in mail.data and other_file.encode() not in mail.data  # headers, body, CSV
    # a rerun mails nothing; a new query at NL01 is mailed alone, to NL01 alone
    assert notify_sites(dep.paths, dep.study, sink.env()).mailed == {}
    dep.deliver("NL01", "leiden-week2.csv", [symptom("E4", leg_pain_nrs=12)])
    dep.ingest()
    assert notify_sites(dep.paths, dep.study, sink.env()).mailed == {"NL01": 1}
    (third,) = sink.messages[2:]
    assert third.rcpt_to == [NL01] and "1 new query on your query list (3 open in all)" in third.body
    assert "  NL01/leiden-week2.csv: 1" in third.body and "leiden-week1.csv" not in third.body
    assert len(csv_rows(third.attachments()["query_list.csv"][1])) == 3  # the whole open list


def test_a_corrected_row_closes_its_query_and_is_not_mailed_again(dep: Deployment, sink: SmtpSink) -> None:
    notify_sites(dep.paths, dep.study, sink.env())
    dep.deliver("NL02", "hague-week2.csv", [symptom("E10", patient="P9", site="NL02")])
    dep.ingest()
    assert notify_sites(dep.paths, dep.study, sink.env()).mailed == {}
    assert len(sink.messages) == 2


def test_no_contact_needs_no_settings_and_a_contact_with_new_queries_needs_the_smtp_host(
        tmp_path: Path, dep: Deployment) -> None:
    plain = make_deployment(tmp_path / "plain")
    plain.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14)])
    plain.ingest()
    assert notify_sites(plain.paths, plain.study, {}).mailed == {}
    with pytest.raises(NotificationError, match=f"new quer\\(ies\\) of site NL01 cannot be mailed: set {ENV_HOST}"):
        notify_sites(dep.paths, dep.study, {})


def test_a_refused_site_contact_does_not_stop_the_other_site(dep: Deployment, sink: SmtpSink) -> None:
    sink.refuse = {NL01}
    with pytest.raises(NotificationError, match=f"refused {NL01}"):
        notify_sites(dep.paths, dep.study, sink.env())
    assert [m.rcpt_to for m in sink.messages] == [[NL02]]
    sink.refuse = set()
    assert notify_sites(dep.paths, dep.study, sink.env()).mailed == {"NL01": 2}  # pending again, not lost


def test_the_data_manager_is_mailed_each_flag_once_with_why_and_since(dep: Deployment, sink: SmtpSink) -> None:
    later = datetime.now(UTC) + timedelta(days=9)
    status = dq_monitor(dep.paths, dep.study, now=later)
    assert [s.site_id for s in status.silent_sites] == ["NL01", "NL02"]
    result = notify_dq_flags(dep.paths, dep.study, status, sink.env())
    assert [f.site_id for f in result.mailed] == ["NL01", "NL02"]
    (mail,) = sink.messages
    assert mail.rcpt_to == [DATA_MANAGER]
    assert mail.subject == "trialpipe: data-quality flag for site(s) NL01, NL02 – TEST-01"
    assert mail.message.get_content_type() == "text/plain" and not mail.attachments()
    body = mail.body
    assert "1. site NL01" in body and "2. site NL02" in body
    assert "   why:   silent for 9.0 days (no new file)" in body and "(its last file)" in body
    # the next day, same silence: nothing new; the run stays red, but the mail is not repeated
    status = dq_monitor(dep.paths, dep.study, now=later + timedelta(days=1))
    assert notify_dq_flags(dep.paths, dep.study, status, sink.env()).mailed == []
    assert len(sink.messages) == 1


def test_dq_mail_settings_are_needed_only_when_a_site_is_flagged(dep: Deployment) -> None:
    ok = dq_monitor(dep.paths, dep.study)
    assert ok.ok and notify_dq_flags(dep.paths, dep.study, ok, {}).mailed == []
    flagged = dq_monitor(dep.paths, dep.study, now=datetime.now(UTC) + timedelta(days=30))
    with pytest.raises(NotificationError, match=f"flag\\(s\\) \\(NL01, NL02\\) cannot be mailed: set {ENV_DQ_TO}"):
        notify_dq_flags(dep.paths, dep.study, flagged, {})
