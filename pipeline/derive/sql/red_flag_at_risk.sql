-- red_flag_at_risk (SAP §6): each patient's time at risk and case status, per flag.
-- grain: one row per analysed patient × flag (the seven flags and ANY); keys: patient_key, flag
-- (site_id, patient_id: the key of the stored per-patient summary derive_state.red_flag_at_risk)
-- needs: red_flag_occurrences, patients, observations, red_flag_flags
with follow_up as (
    -- the latest occurred_at among the patient's effective events
    select p.patient_key, greatest(p.last_anchor_at, max(o.occurred_at)) as last_event_at
    from patients as p
    left join observations as o using (patient_key)
    group by p.patient_key, p.last_anchor_at
),

firsts as (
    select p.patient_key, o.flag, o.occurred_at, o.prevalent
    from red_flag_occurrences as o
    join patients as p using (site_id, patient_id)
),

any_first as (
    -- ANY = the first occurrence of any flag (prevalent when any flag is prevalent)
    select patient_key, 'ANY' as flag, min(occurred_at) as occurred_at, bool_or(prevalent) as prevalent
    from firsts
    group by patient_key
),

grid as (
    select p.*, u.last_event_at, f.flag
    from patients as p
    join follow_up as u using (patient_key)
    cross join red_flag_flags as f
),

joined as (
    select
        g.patient_key, g.site_id, g.patient_id, g.arm, g.flag, g.enrolled_at, g.withdrawn_at, g.last_event_at,
        coalesce(not o.prevalent, true) as at_risk,
        case when not o.prevalent then o.occurred_at end as incident_at
    from grid as g
    left join (select * from firsts union all by name select * from any_first) as o
        using (patient_key, flag)
),

final as (
    select
        patient_key,
        site_id,
        patient_id,
        arm,
        flag,
        at_risk,
        -- time at risk: from enrolment to the earliest of the incident occurrence, the withdrawal
        -- and the patient's latest effective event; never negative; in microseconds (exact sums)
        greatest(us_between(enrolled_at, least(incident_at, withdrawn_at, last_event_at)), 0) as us_at_risk,
        -- a case: the incident occurrence falls within the time at risk (not after a withdrawal)
        incident_at is not null and (withdrawn_at is null or incident_at <= withdrawn_at) as is_case
    from joined
)

select * from final
