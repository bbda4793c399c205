"""The deliveries a real site botches (DTS §5), added to the clean data.

Row faults are extra rows slipped into a site's delivery files; each breaks one
DTS §5 row rule (or is a `duplicate`), and none of them changes the clean data:
they get a new event id, except the re-sent duplicates and the event-id
conflicts, which come after the clean original. File faults are extra files
(or, for `unknown_column`, one delivery with an extra column). Every fault is
recorded (rule, file, event id, 1-based row) so the ingest tests can check each
one is caught.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.schema import REQUIRED_ENVELOPE
from pipeline.simulate.clock import HOUR, amsterdam_offset, render_naive, render_one
from pipeline.simulate.deliveries import Delivery, Insert, clean_columns
from pipeline.simulate.options import SimulationOptions
from pipeline.simulate.writers import csv_bytes, gzip_bytes, rows_to_table

#: Share of a site's rows that gets a fault of each row rule (at least one per rule and site).
ROW_FAULT_RATE = 0.0008
UNREGISTERED_SITE = "XX99"
PHI_COMMENTS = ("Please call the patient back on +31 6 1234 5678", "Patient e-mail: j.jansen@example.nl",
                "Daughter's number (555) 123-4567", "Reach her at 0612345678 after five")
BAD_EXTENTS = ("ankle", "hip", "toes", "shin")
BAD_NUMBERS = ("seven", "7/10", "7-8", "about 7")
LONG_COMMENT = ("Patient describes the pain in detail: burning along the back of the leg, worse when sitting "
                "and on coughing, better when lying down with a pillow under the knees. " * 5)[:600]


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault: its DTS §5 rule, the file, and for a row fault its event_id and 1-based row."""

    rule: str
    path: Path
    event_id: str | None = None
    row: int | None = None


@dataclass
class _Context:
    rng: np.random.Generator
    enrolled: dict[str, str]  # site -> one enrolled patient of it
    serial: int = 700_000  # fault event ids: E700001 ... (clean ones count a patient's events from E000001)

    def new_id(self, row: dict[str, Any], sep: str = "-") -> str:
        self.serial += 1
        return f"{row['patient_id']}{sep}E{self.serial:06d}"

    def other_site(self, site_id: str) -> tuple[str, str]:
        """Another site and one of its enrolled patients (or an unregistered site when there is none)."""
        others = sorted(s for s in self.enrolled if s != site_id)
        if not others:
            return "NL99", "NL99-P0001"
        other = others[int(self.rng.integers(len(others)))]
        return other, self.enrolled[other]


def _keep(row: dict[str, Any], *fields: str) -> None:
    for name in list(row):
        if name not in fields:
            row[name] = None




def _retimed(instant: int, text: str) -> str:
    """The same instant written with another offset (a re-sent row may do that)."""
    return render_one(instant, 0 if not text.endswith("Z") else _local_offset(instant))


def _local_offset(instant: int) -> int:
    return int(amsterdam_offset(np.asarray([instant]))[0])


# Each builder turns a copy of a clean diary row into the faulty row; None = no fault possible here.
Builder = Callable[[dict[str, Any], _Context], dict[str, Any] | None]


def _duplicate(row: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    if ctx.rng.random() < 0.5:
        row["recorded_at"] = _retimed(row["_recorded"], row["recorded_at"])
    return row


def _conflict(row: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    row["back_pain_nrs"] = row["back_pain_nrs"] + 2 if row["back_pain_nrs"] <= 8 else row["back_pain_nrs"] - 2
    return row


def _new(change: Callable[[dict[str, Any], _Context], None]) -> Builder:
    def build(row: dict[str, Any], ctx: _Context) -> dict[str, Any]:
        row["event_id"] = ctx.new_id(row)
        change(row, ctx)
        return row
    return build


def _set(**values: Any) -> Callable[[dict[str, Any], _Context], None]:
    def change(row: dict[str, Any], ctx: _Context) -> None:
        row.update(values)
    return change


def _target_unknown(row: dict[str, Any], ctx: _Context) -> None:
    row["event_type"] = "correction"
    row["target_event_id"] = ctx.new_id(row)  # an id no row ever gets
    row["comment"] = "Corrected data entry error"


def _field_not_allowed(row: dict[str, Any], ctx: _Context) -> None:
    _keep(row, *REQUIRED_ENVELOPE, "leg_pain_nrs")
    row.update(event_type="treatment", modality="nsaid")


def _bad_id(row: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    row["event_id"] = ctx.new_id(row, sep="#")
    return row


def _not_enrolled(row: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    ctx.serial += 1  # a screening failure's diary: never randomised
    row["patient_id"] = f"{row['site_id']}-S{ctx.serial:06d}"
    row["event_id"] = f"{row['patient_id']}-E000001"
    return row


def _site_mismatch(row: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    """Another site's record delivered into this site's folder (a security event)."""
    row["site_id"], row["patient_id"] = ctx.other_site(row["site_id"])
    row["event_id"] = ctx.new_id(row)
    return row


def _no_change(row: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    return row


def _red_flag_rejected(row: dict[str, Any], ctx: _Context) -> None:
    row.update(leg_pain_nrs=11, bladder_dysfunction=True)


#: Row rules: (rule, builder, placement) — "after" right behind the source row, "later" in a later delivery.
ROW_FAULTS: tuple[tuple[str, Builder, str], ...] = (
    ("duplicate", _duplicate, "later"),
    ("event_id_conflict", _conflict, "later"),
    ("out_of_range", _new(lambda r, c: r.update(leg_pain_nrs=int(c.rng.integers(11, 15)))), "after"),
    ("bad_enum", _new(lambda r, c: r.update(pain_extent=BAD_EXTENTS[int(c.rng.integers(len(BAD_EXTENTS)))])),
     "after"),
    ("bad_type", _new(lambda r, c: r.update(leg_pain_nrs=BAD_NUMBERS[int(c.rng.integers(4))])), "after"),
    ("naive_timestamp", _new(lambda r, c: r.update(occurred_at=render_naive(r["_occurred"],
                                                                             _local_offset(r["_occurred"])))), "after"),
    ("missing_required", _new(_set(leg_pain_nrs=None)), "after"),
    ("site_mismatch", _site_mismatch, "after"),
    ("patient_not_enrolled", _not_enrolled, "after"),
    ("target_unknown", _new(_target_unknown), "after"),
    ("phi_in_comment", _new(lambda r, c: r.update(comment=PHI_COMMENTS[int(c.rng.integers(len(PHI_COMMENTS)))])),
     "after"),
    ("comment_too_long", _new(_set(comment=LONG_COMMENT)), "after"),
    ("bad_id", _bad_id, "after"),
    ("field_not_allowed", _new(_field_not_allowed), "after"),
    ("occurred_after_recorded", _new(lambda r, c: r.update(
        recorded_at=_retimed(r["_occurred"] - 2 * HOUR, "Z"))), "after"),
)


@dataclass
class _FileFault:
    rule: str
    relpath: Path
    data: bytes | None = None  # None: copy of `copy_of` (written first) or a delivery changed in place
    copy_of: Path | None = None


@dataclass
class Injected:
    """The file faults still to write, and what was injected."""

    files: list[_FileFault] = field(default_factory=list)
    unvalidated_red_flags: int = 0

    def write_files(self, landing: Path) -> list[FaultRecord]:
        records = []
        for f in self.files:
            path = landing / f.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            if f.copy_of is not None:
                shutil.copyfile(landing / f.copy_of, path)
            elif f.data is not None:
                path.write_bytes(f.data)
            records.append(FaultRecord(f.rule, path))
        return records


def _candidates(d: Delivery, event_type: str) -> np.ndarray:
    """Rows of a delivery that can be the source of a fault: of the type, no red-flag signal, no comment."""
    t = d.table
    ok = pc.and_(pc.equal(t.column("event_type"), event_type), pc.is_null(t.column("comment")))
    for name in ("bladder_dysfunction", "bowel_dysfunction", "saddle_numbness", "bilateral_symptoms"):
        ok = pc.and_(ok, pc.invert(pc.fill_null(t.column(name), False)))
    return np.flatnonzero(ok.to_numpy(zero_copy_only=False))


def _row(d: Delivery, position: int) -> dict[str, Any]:
    row: dict[str, Any] = d.table.slice(position, 1).to_pylist()[0]
    return row


def _rows(deliveries: list[Delivery], site: list[int], k: np.ndarray, pos: np.ndarray) -> list[dict[str, Any]]:
    """Rows `pos` of deliveries `site[k]`, as dicts, in the order asked."""
    out: list[dict[str, Any]] = [{} for _ in range(k.size)]
    for kk in np.unique(k):
        idx = np.flatnonzero(k == kk)
        for i, row in zip(idx, deliveries[site[kk]].table.take(pa.array(pos[idx])).to_pylist(), strict=True):
            out[i] = row
    return out


def _strip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _place(ctx: _Context, site: list[int], deliveries: list[Delivery], k: int, pos: int, how: str) -> tuple[int, int]:
    """(delivery, insert position) for a fault built from row `pos` of delivery `site[k]`."""
    if how == "later" and k + 1 < len(site):
        target = site[int(ctx.rng.integers(k + 1, len(site)))]
        return target, int(ctx.rng.integers(0, deliveries[target].table.num_rows + 1))
    n = deliveries[site[k]].table.num_rows
    return site[k], pos + 1 if how == "after" else int(ctx.rng.integers(pos + 1, n + 1))


def _pool(deliveries: list[Delivery], site: list[int], event_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Candidate source rows of a site: (index into `site`, row position), as two arrays."""
    found = [_candidates(deliveries[i], event_type) for i in site]
    k = np.concatenate([np.full(f.size, j, np.int64) for j, f in enumerate(found)])
    return k, np.concatenate(found).astype(np.int64)


def _row_faults(deliveries: list[Delivery], site: list[int], ctx: _Context) -> int:
    """Slip the row faults into one site's deliveries; returns the number of red flags in rejected rows."""
    n_rows = sum(deliveries[i].table.num_rows for i in site)
    per_rule = max(1, round(ROW_FAULT_RATE * n_rows))
    rules: list[tuple[str, Builder, str]] = [r for r in ROW_FAULTS for _ in range(per_rule)]
    rules.append(("out_of_range", _new(_red_flag_rejected), "after"))
    rules.append(("target_other_patient", _no_change, "after"))  # built from its neighbours below
    pool_k, pool_pos = _pool(deliveries, site, "symptom_report")
    picks = ctx.rng.choice(pool_k.size, size=min(pool_k.size, len(rules)), replace=False)
    rules = rules[: picks.size]
    src_k, src_pos = pool_k[picks], pool_pos[picks]
    enrol_k, enrol_pos = _pool(deliveries, site, "enrollment")
    if enrol_k.size:  # a second enrollment of an enrolled patient
        one = int(ctx.rng.integers(enrol_k.size))
        rules.append(("duplicate_enrollment", _new(lambda r, c: None), "after"))  # same payload, new id
        src_k = np.append(src_k, enrol_k[one])
        src_pos = np.append(src_pos, enrol_pos[one])
    red_flags = 0
    sources = _rows(deliveries, site, src_k, src_pos)
    for (rule, build, how), k, pos, row in zip(rules, src_k.tolist(), src_pos.tolist(), sources, strict=True):
        source = deliveries[site[k]]
        built = _other_patient_correction(source, pos, row, ctx) if rule == "target_other_patient" \
            else build(row, ctx)
        if built is None:
            continue
        target, at = _place(ctx, site, deliveries, k, pos, how)
        deliveries[target].inserts.append(Insert(at, _strip(built), rule))
        red_flags += bool(built.get("bladder_dysfunction"))
    return red_flags


def _other_patient_correction(d: Delivery, pos: int, row: dict[str, Any], ctx: _Context) -> dict[str, Any] | None:
    """A correction sent for this patient that targets an earlier event of another patient of the site."""
    for back in range(pos - 1, max(-1, pos - 200), -1):
        target = _row(d, back)
        if target["patient_id"] != row["patient_id"] and target["event_type"] in ("symptom_report", "assessment"):
            fixed = dict(target)
            fixed.update(event_id=ctx.new_id(row), event_type="correction", patient_id=row["patient_id"],
                         recorded_at=row["recorded_at"], target_event_id=target["event_id"],
                         comment="Corrected data entry error")
            return fixed
    return None


def _sample(d: Delivery, n: int = 20) -> pa.Table:
    return clean_columns(d.table.slice(0, n))


def _sibling(d: Delivery, tag: str, fmt: str) -> Path:
    """Another file name of the site, on the day of delivery `d`: `2025-03-02_delivery_<tag>.<fmt>`."""
    return Path(d.site_id) / f"{d.name.split('_')[0]}_delivery_{tag}.{fmt}"


def _file_faults(deliveries: list[Delivery], by_site: list[list[int]]) -> list[_FileFault]:
    """One of each file-level fault, spread over the sites."""
    sites = [s for s in by_site if s]
    if not sites:
        return []
    first, second, third = (deliveries[sites[i % len(sites)][0]] for i in range(3))
    last_of_second = deliveries[sites[1 % len(sites)][-1]]
    gz = gzip_bytes(csv_bytes(_sample(first, 200)))
    parquet = io.BytesIO()
    pq.write_table(_sample(second), parquet)
    latin = _sample(third).to_pylist()
    latin[0]["comment"] = "Patiënt voelt zich beter"  # saved from a spreadsheet in Windows-1252
    foreign = _sample(first).to_pylist()
    for row in foreign:
        for name in ("event_id", "site_id", "patient_id", "target_event_id"):
            if row.get(name):
                row[name] = UNREGISTERED_SITE + row[name][len(first.site_id):]
    last_of_second.extra_columns["entered_by"] = "research nurse"
    return [
        _FileFault("file_duplicate", _sibling(first, "resent", first.fmt), copy_of=first.relpath),
        _FileFault("unreadable", _sibling(first, "b", "csv.gz"), gz[: len(gz) * 3 // 5]),  # upload cut short
        _FileFault("unreadable", _sibling(second, "b", "parquet"), parquet.getvalue()[: parquet.tell() // 2]),
        _FileFault("not_utf8", _sibling(third, "excel", "csv"),
                   csv_bytes(rows_to_table(latin)).decode("utf-8").encode("cp1252")),
        _FileFault("missing_column", _sibling(first, "c", "csv"), csv_bytes(_sample(first).drop_columns(["event_id"]))),
        _FileFault("unknown_column", last_of_second.relpath),
        _FileFault("unregistered_site", Path(UNREGISTERED_SITE) / f"{first.name.split('_')[0]}_delivery.csv",
                   csv_bytes(rows_to_table(foreign))),
    ]


def inject_faults(deliveries: list[Delivery], options: SimulationOptions, rng: np.random.Generator) -> Injected:
    """Add the row faults to the deliveries (as inserts) and plan the file faults."""
    ctx = _Context(rng, {})
    for d in deliveries:
        enrollments = d.table.filter(pc.equal(d.table.column("event_type"), "enrollment"))
        if enrollments.num_rows and d.site_id not in ctx.enrolled:
            ctx.enrolled[d.site_id] = str(enrollments.column("patient_id")[0])
    by_site = [[i for i, d in enumerate(deliveries) if d.site == s] for s in range(options.n_sites)]
    injected = Injected()
    for site in by_site:
        if site:
            injected.unvalidated_red_flags += _row_faults(deliveries, site, ctx)
    injected.files = _file_faults(deliveries, by_site)
    return injected
