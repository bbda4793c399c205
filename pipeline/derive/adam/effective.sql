-- adam_effective (SAP §1): the effective enrollments, withdrawals and symptom_reports, with the
-- payload fields the ADaM datasets need (age_years and sex, which no SAP derivation reads).
--   - a retraction removes its target (and with it the target's corrections);
--   - of several corrections of one target the latest recorded_at wins (ties: later
--     ingested_at, then greater event_id); it replaces occurred_at and the whole payload.
-- grain: one row per effective enrollment, withdrawal or symptom_report; keys: event_id
-- needs: accepted_events (the accepted events, already cut at the export's as-of instant)
with accepted as (
    select
        event_id, event_type, site_id, patient_id, occurred_at, recorded_at, ingested_at, target_event_id,
        arm, age_years, sex, affected_side, global_recovery
    from accepted_events
    where event_type in ('enrollment', 'withdrawal', 'symptom_report', 'correction', 'retraction')
),

retracted as (
    select distinct target_event_id as event_id
    from accepted
    where event_type = 'retraction'
),

winning_correction as (
    select *
    from accepted
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
        if(c.event_id is null, e.occurred_at, c.occurred_at) as occurred_at,
        if(c.event_id is null, e.arm, c.arm) as arm,
        if(c.event_id is null, e.age_years, c.age_years) as age_years,
        if(c.event_id is null, e.sex, c.sex) as sex,
        if(c.event_id is null, e.affected_side, c.affected_side) as affected_side,
        if(c.event_id is null, e.global_recovery, c.global_recovery) as global_recovery
    from accepted as e
    anti join retracted as r using (event_id)
    left join winning_correction as c on c.target_event_id = e.event_id
    where e.event_type in ('enrollment', 'withdrawal', 'symptom_report')
)

select * from final
