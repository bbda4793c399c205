"""Site contacts: a site whose query list gains new queries hears of it by e-mail.

Only sites with `contact_email` under `[[sites]]` in study.toml are mailed. The message names that
site alone: how many queries are new, the site's own files they concern, and the site's open query
list as CSV (formula-safe, as in its outbox). Nothing from another site's rows, no PHI, and no free
text in the body. Each new query (pipeline.ingest.queries.query_id) is covered by one message, once,
through the notification ledger; a query closed and opened again later is not new.
"""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Paths, Study
from pipeline.ingest.queries import open_queries, query_id, to_csv
from pipeline.notify import ledger
from pipeline.notify.ledger import SITE_QUERIES
from pipeline.notify.mail import MailSettings, NotificationError, compose, message_id, text
from pipeline.notify.red_flags import notify_lock


@dataclass
class SiteMailResult:
    mailed: dict[str, int] = field(default_factory=dict)  # site → new queries mailed
    resent: int = 0

    def describe(self) -> str:
        if not self.mailed:
            return "site contacts: no new query to mail" + (f"; sent {self.resent} again" if self.resent else "")
        return "site contacts: mailed " + ", ".join(f"{s} ({n} new)" for s, n in sorted(self.mailed.items()))


def body_for(site: str, study_id: str, new: list[dict[str, Any]], open_count: int) -> str:
    files = Counter(str(r["file"]) for r in new)
    lines = [f"Study {text(study_id)}, site {text(site)}: {len(new)} new quer{'y' if len(new) == 1 else 'ies'} "
             f"on your query list ({open_count} open in all).", "", "Files concerned:"]
    lines += [f"  {text(name)}: {n}" for name, n in sorted(files.items())]
    lines += ["", "The open query list is attached (query_list.csv) and lies in your outbox folder "
              f"({text(site)}/query_list.csv, .html). Correct each row and deliver it again with the same "
              "event_id; a file rejected whole must be delivered again.", "",
              "Sent by trialpipe once per new query."]
    return "\n".join(lines) + "\n"


def notify_sites(paths: Paths, study: Study, env: Mapping[str, str] | None = None) -> SiteMailResult:
    """Mail each site contact about its new queries; raise (after the others) when one cannot be mailed."""
    contacts = {s.id: s.contact_email for s in study.sites if s.contact_email}
    base = MailSettings.from_env(env)
    result = SiteMailResult()
    errors: list[str] = []
    with notify_lock(paths):
        for r in ledger.resume(paths, [SITE_QUERIES], base.to((), "study.toml contact_email")):
            result.resent += 1
            if r.refused:
                errors.append(f"the SMTP server refused {', '.join(r.refused)} (study.toml contact_email)")
        if not contacts:
            return result
        queries = open_queries(paths)
        done = ledger.covered(paths, SITE_QUERIES)
        for site, address in sorted(contacts.items()):
            rows = queries.get(site, [])
            new = [r for r in rows if query_id(site, r) not in done]
            if not new:
                continue
            settings = base.to((address,), f"contact_email of site {site}")
            try:
                settings.require(f"{len(new)} new quer(ies) of site {site}")
            except NotificationError as exc:
                errors.append(str(exc))
                continue
            ids = [query_id(site, r) for r in new]
            subject = f"trialpipe: {len(new)} new quer{'y' if len(new) == 1 else 'ies'} for site {site} – " \
                      f"{study.study_id}"
            msg = compose(subject, body_for(site, study.study_id, new, len(rows)), settings,
                          message_id(SITE_QUERIES, ids, settings.recipients, settings.sender),
                          [("query_list.csv", to_csv(rows).encode("utf-8"))])
            try:
                ledger.deliver(paths, SITE_QUERIES, ids, msg, settings)
            except smtplib.SMTPRecipientsRefused:
                errors.append(f"the SMTP server refused {address} (contact_email of site {site})")
                continue
            result.mailed[site] = len(new)
    if errors:
        raise NotificationError("; ".join(errors))
    return result
