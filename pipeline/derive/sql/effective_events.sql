-- effective_events(candidates) (SAP §1): a table macro applying corrections and retractions
-- to the accepted events named by `candidates` (a table or view with the event columns).
--   - a retraction removes its target (and with it the target's corrections);
--   - of several corrections of one target the latest recorded_at wins (ties: later
--     ingested_at, then greater event_id); it replaces occurred_at and the whole payload;
--     event_id, event_type, recorded_at and ingested_at stay those of the corrected event;
--   - corrections and retractions are not effective events themselves.
-- grain: one row per effective event among the candidates; keys: event_id
-- The one definition of SAP §1: the derivations and the ADaM export (adam/effective.sql) read it.
-- needs: log_anchors (the corrections and retractions)
create or replace temp macro effective_events(candidates) as table
with candidate as (
    select
        event_id, event_type, site_id, patient_id, occurred_at, recorded_at, ingested_at,
        arm, age_years, sex, affected_side,
        leg_pain_nrs, back_pain_nrs, pain_extent, paresthesia, paresthesia_extent, walking_tolerance_min,
        bladder_dysfunction, bowel_dysfunction, saddle_numbness, bilateral_symptoms, global_recovery,
        slr_angle_deg, dorsiflexion_mrc, plantarflexion_mrc, calf_raise_count, odi_score,
        modality, flag
    from query_table(candidates)
    where event_type in ('enrollment', 'symptom_report', 'assessment', 'treatment', 'red_flag', 'withdrawal')
),

-- event_ids are unique within the study, and the ingest only accepts a correction or a
-- retraction whose target is an event of the same site and patient
retracted as (
    select distinct target_event_id as event_id
    from log_anchors
    where event_type = 'retraction'
),

winning_correction as (
    select *
    from log_anchors
    where event_type = 'correction'
    qualify row_number() over (
        partition by target_event_id
        order by recorded_at desc, ingested_at desc, event_id desc
    ) = 1
),

final as (
    select
        e.event_id,
        e.event_type,
        e.site_id,
        e.patient_id,
        e.recorded_at,
        e.ingested_at,
        c.event_id is not null as corrected,
        -- each of these from the winning correction, when there is one
        if(c.event_id is null, e.occurred_at, c.occurred_at) as occurred_at,
        if(c.event_id is null, e.arm, c.arm) as arm,
        -- (age and sex: read only by the ADaM export, adam/effective.sql)
        if(c.event_id is null, e.age_years, c.age_years) as age_years,
        if(c.event_id is null, e.sex, c.sex) as sex,
        if(c.event_id is null, e.affected_side, c.affected_side) as affected_side,
        if(c.event_id is null, e.leg_pain_nrs, c.leg_pain_nrs) as leg_pain_nrs,
        if(c.event_id is null, e.back_pain_nrs, c.back_pain_nrs) as back_pain_nrs,
        if(c.event_id is null, e.pain_extent, c.pain_extent) as pain_extent,
        if(c.event_id is null, e.paresthesia, c.paresthesia) as paresthesia,
        if(c.event_id is null, e.paresthesia_extent, c.paresthesia_extent) as paresthesia_extent,
        if(c.event_id is null, e.walking_tolerance_min, c.walking_tolerance_min) as walking_tolerance_min,
        if(c.event_id is null, e.bladder_dysfunction, c.bladder_dysfunction) as bladder_dysfunction,
        if(c.event_id is null, e.bowel_dysfunction, c.bowel_dysfunction) as bowel_dysfunction,
        if(c.event_id is null, e.saddle_numbness, c.saddle_numbness) as saddle_numbness,
        if(c.event_id is null, e.bilateral_symptoms, c.bilateral_symptoms) as bilateral_symptoms,
        if(c.event_id is null, e.global_recovery, c.global_recovery) as global_recovery,
        if(c.event_id is null, e.slr_angle_deg, c.slr_angle_deg) as slr_angle_deg,
        if(c.event_id is null, e.dorsiflexion_mrc, c.dorsiflexion_mrc) as dorsiflexion_mrc,
        if(c.event_id is null, e.plantarflexion_mrc, c.plantarflexion_mrc) as plantarflexion_mrc,
        if(c.event_id is null, e.calf_raise_count, c.calf_raise_count) as calf_raise_count,
        if(c.event_id is null, e.odi_score, c.odi_score) as odi_score,
        if(c.event_id is null, e.modality, c.modality) as modality,
        if(c.event_id is null, e.flag, c.flag) as flag
    from candidate as e
    anti join retracted as r using (event_id)
    left join winning_correction as c on c.target_event_id = e.event_id
)

select * from final
