-- log_anchors (SAP §1): the few accepted events that anchor or edit all others —
-- enrollments, withdrawals, corrections and retractions. Read once, kept small.
-- grain: one row per accepted enrollment, withdrawal, correction or retraction
-- keys: event_id
-- needs: accepted_events (pipeline.schema.EVENT_SCHEMA), already cut at the as-of instant
with accepted as (
    select
        event_id, event_type, site_id, patient_id, occurred_at, recorded_at, ingested_at, target_event_id,
        arm, age_years, sex, affected_side,
        leg_pain_nrs, back_pain_nrs, pain_extent, paresthesia, paresthesia_extent, walking_tolerance_min,
        bladder_dysfunction, bowel_dysfunction, saddle_numbness, bilateral_symptoms, global_recovery,
        slr_angle_deg, dorsiflexion_mrc, plantarflexion_mrc, calf_raise_count, odi_score,
        modality, flag
    from accepted_events
    where event_type in ('enrollment', 'withdrawal', 'correction', 'retraction')
),

final as (
    select * from accepted
)

select * from final
