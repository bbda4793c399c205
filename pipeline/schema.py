"""The DTS event model as data: event types, fields, their types and domains.

Everything that validates, stores or derives events reads the field list from
here, so a protocol amendment is one edit (plus an upcaster, see SCHEMA_VERSION).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

#: Bumped whenever the stored event layout changes; readers upcast older files.
SCHEMA_VERSION = 1

FieldKind = Literal["id", "string", "enum", "int", "bool", "timestamp", "text"]

EXTENT_LEVELS = ("none", "back", "buttock", "thigh", "knee", "calf", "foot")
PARESTHESIA_LEVELS = ("none", "tingling", "numbness")

EVENT_TYPES = (
    "enrollment",
    "symptom_report",
    "assessment",
    "treatment",
    "red_flag",
    "correction",
    "retraction",
    "withdrawal",
)
BASE_TYPES = ("enrollment", "symptom_report", "assessment", "treatment", "red_flag")
CORRECTABLE_TYPES = BASE_TYPES
RETRACTABLE_TYPES = (*BASE_TYPES, "withdrawal")


@dataclass(frozen=True)
class Field:
    name: str
    kind: FieldKind
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    max_len: int | None = None


ENVELOPE: tuple[Field, ...] = (
    Field("event_id", "id", max_len=64),
    Field("event_type", "enum", choices=EVENT_TYPES),
    Field("site_id", "string"),
    Field("patient_id", "id", max_len=64),
    Field("occurred_at", "timestamp"),
    Field("recorded_at", "timestamp"),
    Field("comment", "text", max_len=500),
)
REQUIRED_ENVELOPE = ("event_id", "event_type", "site_id", "patient_id", "occurred_at", "recorded_at")

PAYLOAD: tuple[Field, ...] = (
    Field("target_event_id", "id", max_len=64),
    # enrollment (arm's choices come from the study configuration)
    Field("arm", "enum"),
    Field("age_years", "int", low=18, high=100),
    Field("sex", "enum", choices=("F", "M", "X")),
    Field("affected_side", "enum", choices=("left", "right", "bilateral")),
    # symptom_report
    Field("leg_pain_nrs", "int", low=0, high=10),
    Field("back_pain_nrs", "int", low=0, high=10),
    Field("pain_extent", "enum", choices=EXTENT_LEVELS),
    Field("paresthesia", "enum", choices=PARESTHESIA_LEVELS),
    Field("paresthesia_extent", "enum", choices=EXTENT_LEVELS),
    Field("muscle_spasm", "bool"),
    Field("walking_tolerance_min", "int", low=0, high=720),
    Field("sitting_tolerance_min", "int", low=0, high=720),
    Field("bladder_dysfunction", "bool"),
    Field("bowel_dysfunction", "bool"),
    Field("saddle_numbness", "bool"),
    Field("bilateral_symptoms", "bool"),
    Field("global_recovery", "int", low=1, high=7),
    # assessment
    Field("slr_angle_deg", "int", low=0, high=90),
    Field("dorsiflexion_mrc", "int", low=0, high=5),
    Field("plantarflexion_mrc", "int", low=0, high=5),
    Field("calf_raise_count", "int", low=0, high=100),
    Field("odi_score", "int", low=0, high=100),
    Field("slump_test", "enum", choices=("positive", "negative")),
    # treatment
    Field("modality", "enum", choices=(
        "physical_therapy", "dry_needling", "epidural_steroid", "oral_steroid", "nsaid", "surgery", "other",
    )),
    # red_flag
    Field("flag", "enum", choices=(
        "bladder_dysfunction", "bowel_dysfunction", "saddle_anesthesia",
        "progressive_motor_deficit", "bilateral_symptoms", "other",
    )),
)
FIELDS: tuple[Field, ...] = ENVELOPE + PAYLOAD
FIELD_BY_NAME = {f.name: f for f in FIELDS}
ALL_COLUMNS = tuple(f.name for f in FIELDS)

#: Payload fields per event type and which of them are required.
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "enrollment": ("arm", "age_years", "sex", "affected_side"),
    "symptom_report": (
        "leg_pain_nrs", "back_pain_nrs", "pain_extent", "paresthesia", "paresthesia_extent",
        "muscle_spasm", "walking_tolerance_min", "sitting_tolerance_min", "bladder_dysfunction",
        "bowel_dysfunction", "saddle_numbness", "bilateral_symptoms", "global_recovery",
    ),
    "assessment": (
        "slr_angle_deg", "dorsiflexion_mrc", "plantarflexion_mrc", "calf_raise_count", "odi_score", "slump_test",
    ),
    "treatment": ("modality",),
    "red_flag": ("flag",),
    "withdrawal": (),
    "retraction": ("target_event_id",),
    # a correction carries the target's payload; which fields is only known
    # once the target is looked up, so every base payload field is allowed.
    "correction": ("target_event_id", *(f.name for f in PAYLOAD if f.name != "target_event_id")),
}
#: the corrected event a correction carries: its payload fields (all but target_event_id)
CORRECTION_PAYLOAD: tuple[str, ...] = tuple(c for c in TYPE_FIELDS["correction"] if c != "target_event_id")
TYPE_REQUIRED: dict[str, tuple[str, ...]] = {
    "enrollment": ("arm", "age_years", "affected_side"),
    "symptom_report": ("leg_pain_nrs", "back_pain_nrs", "pain_extent", "paresthesia"),
    "assessment": (),  # at least one of TYPE_FIELDS["assessment"]: a rule of its own
    "treatment": ("modality",),
    "red_flag": ("flag",),
    "withdrawal": (),
    "retraction": ("target_event_id",),
    "correction": ("target_event_id",),
}

_ARROW = {
    "id": pa.string(), "string": pa.string(), "enum": pa.string(), "text": pa.string(),
    "int": pa.int32(), "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"),
}

LINEAGE = pa.schema([
    ("batch_id", pa.string()),
    ("source_file", pa.string()),
    ("source_sha256", pa.string()),
    ("source_row", pa.int64()),
    ("ingested_at", pa.timestamp("us", tz="UTC")),
    ("content_hash", pa.string()),
    ("warnings", pa.list_(pa.string())),
    ("schema_version", pa.int32()),
])

#: The stored layout of one accepted event (one row of `events`).
EVENT_SCHEMA = pa.schema([pa.field(f.name, _ARROW[f.kind]) for f in FIELDS] + list(LINEAGE))
