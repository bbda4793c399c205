"""Data-quality flags to the data manager: a site flagged by `dq_monitor` is mailed once per flag.

To `TRIALPIPE_DQ_EMAIL_TO`: which site, why (silent for N days, or a rejection rate of X % against Y %
in earlier weeks), and since when (its last delivery, or the ISO week of the jump). A flag is one item
of the notification ledger: `dq:<site>:silent_site:<last delivery>` or `dq:<site>:rejection_jump:<week>`,
so the same silence or jump is mailed once however often the day is re-run, and a site that delivers
and falls silent again is mailed again. The `dq_monitor` run still turns red while a site is flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC

from pipeline.config import Paths, Study
from pipeline.notify import ledger
from pipeline.notify.ledger import DQ_FLAG
from pipeline.notify.mail import ENV_DQ_TO, MailSettings, compose, message_id, text
from pipeline.notify.red_flags import notify_lock, refused_error
from pipeline.report.dq import DQStatus, RejectionJump, SilentSite


@dataclass(frozen=True)
class Flag:
    item_id: str
    site_id: str
    why: str
    since: str


@dataclass
class DQMailResult:
    mailed: list[Flag] = field(default_factory=list)
    still_flagged: int = 0

    def describe(self) -> str:
        if not self.mailed:
            return f"data-quality mail: nothing new to mail ({self.still_flagged} flag(s) mailed before)"
        return f"data-quality mail: mailed {len(self.mailed)} flag(s): " + ", ".join(f.site_id for f in self.mailed)


def silent_flag(s: SilentSite) -> Flag:
    if s.last_delivery_at is None:
        return Flag(f"dq:{s.site_id}:silent_site:never", s.site_id, "no file delivered yet", "the start of the study")
    last = s.last_delivery_at.astimezone(UTC)
    return Flag(f"dq:{s.site_id}:silent_site:{last:%Y-%m-%dT%H:%M:%SZ}", s.site_id,
                f"silent for {s.days_silent:.1f} days (no new file)", f"{last:%Y-%m-%d %H:%M} UTC (its last file)")


def jump_flag(j: RejectionJump) -> Flag:
    return Flag(f"dq:{j.site_id}:rejection_jump:{j.iso_week}", j.site_id,
                f"a rejection rate of {j.rate:.0%} ({j.rejected} of {j.received} rows) against "
                f"{j.previous_mean:.0%} in earlier weeks", f"ISO week {j.iso_week} (of ingestion)")


def flags(status: DQStatus) -> list[Flag]:
    return [*map(silent_flag, status.silent_sites), *map(jump_flag, status.rejection_jumps)]


def body_for(study_id: str, new: list[Flag], status: DQStatus) -> str:
    at = status.now.astimezone(UTC)
    lines = [f"Study {text(study_id)}: the data-quality check of {at:%Y-%m-%d %H:%M} UTC flags "
             f"{len(new)} new problem(s).", ""]
    for n, f in enumerate(new, 1):
        lines += [f"{n}. site {text(f.site_id)}", f"   why:   {f.why}", f"   since: {f.since}", ""]
    lines += ["The dq_monitor run stays red until the site delivers or its rejections fall back; the "
              "site's query list is in its outbox.", "Sent by trialpipe once per flag."]
    return "\n".join(lines) + "\n"


def notify_dq_flags(paths: Paths, study: Study, status: DQStatus,
                    env: Mapping[str, str] | None = None) -> DQMailResult:
    """Mail the flags no message covered yet, in one message; raise when that is impossible."""
    settings = MailSettings.from_env(env, ENV_DQ_TO)
    found = flags(status)
    with notify_lock(paths):
        for r in ledger.resume(paths, [DQ_FLAG], settings):
            if r.refused:
                raise refused_error("an interrupted data-quality mail was", r.recipients, r.refused, ENV_DQ_TO)
        done = ledger.covered(paths, DQ_FLAG)
        new = [f for f in found if f.item_id not in done]
        if not new:
            return DQMailResult([], len(found))
        settings.require(f"{len(new)} data-quality flag(s) ({', '.join(f.site_id for f in new)})")
        ids = [f.item_id for f in new]
        sites = sorted({f.site_id for f in new})
        subject = f"trialpipe: data-quality flag for site(s) {', '.join(sites)} – {study.study_id}"
        msg = compose(subject, body_for(study.study_id, new, status), settings,
                      message_id(DQ_FLAG, ids, settings.recipients, settings.sender))
        accepted = ledger.deliver(paths, DQ_FLAG, ids, msg, settings)
    refused = [r for r in settings.recipients if r not in accepted]
    if refused:
        raise refused_error(f"{len(new)} data-quality flag(s) were", accepted, refused, ENV_DQ_TO)
    return DQMailResult(new, len(found) - len(new))
