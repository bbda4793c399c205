"""Closing the loop with people: each role gets what it must act on, by e-mail, once, recorded.

* red flags → the physicians (`TRIALPIPE_ALERT_EMAIL_TO`), after every ingest and derive (red_flags);
* new queries → each site's contact (`contact_email` in study.toml), after every ingest (sites);
* the weekly reports → the study team (`TRIALPIPE_REPORT_EMAIL_TO`), `report --mail` (reports);
* data-quality flags → the data manager (`TRIALPIPE_DQ_EMAIL_TO`), from `dq_monitor` (dq).

Every message goes through the notification ledger (ledger): intended, sent, recorded, never twice
composed, never skipped. Settings are needed only when something is pending (mail).
"""

from __future__ import annotations

from typing import Any

from pipeline.notify.ledger import LEDGER_SCHEMA
from pipeline.notify.mail import ENV_DQ_TO, ENV_HOST, ENV_REPORT_TO, ENV_TO, ENV_VARS, MailSettings, NotificationError
from pipeline.notify.red_flags import NotifyResult, notified_ids, notify_red_flags, pending_alerts
from pipeline.notify.sites import SiteMailResult, notify_sites

__all__ = ["ENV_DQ_TO", "ENV_HOST", "ENV_REPORT_TO", "ENV_TO", "ENV_VARS", "LEDGER_SCHEMA", "MailSettings",
           "NotificationError", "NotifyResult", "SiteMailResult", "notified_ids", "notify_red_flags",
           "notify_sites", "notify_task", "pending_alerts"]


def notify_task() -> dict[str, Any]:
    """The body of the DAGs' `notify_red_flags` tasks: red flags first, then the site contacts' new queries.

    The site mail is tried even when the red-flag mail failed; the task fails if either did.
    """
    from pipeline.config import load_study, paths_from_env

    paths = paths_from_env()
    study = load_study(paths.study)
    failure: Exception | None = None
    out: dict[str, Any] = {}
    try:
        result = notify_red_flags(paths, study)
        print(result.describe())
        out = result.to_dict()
    except Exception as exc:  # re-raised below, once the sites had their turn
        failure = exc
    try:
        sites = notify_sites(paths, study)
    except Exception as exc:
        if failure is None:
            raise
        print(f"site contacts: {exc}")
        raise failure from exc
    print(sites.describe())
    if failure is not None:
        raise failure
    return {**out, "sites": sites.mailed}
