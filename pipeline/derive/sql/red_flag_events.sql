-- red_flag_events (SAP §6, occurrence table): every observation at which a red flag occurs.
-- grain: one row per observation × flag; keys: event_id, flag
-- seq: as in observations (the order "first" and "last" use)
-- derived_only: true where only derivation can see the flag (motor decline in assessments, new
--               bilateral symptoms and paresthesia spread in diaries) — these raise derive alerts
-- needs: observations, patients, weekly_values (DFMRC baseline)
with reports as (
    select * from observations where event_type = 'symptom_report'
),

assessments as (
    select * from observations where event_type = 'assessment'
),

reported as (
    -- clinician-reported red_flag events
    select * from observations where event_type = 'red_flag'
),

dfmrc_baseline as (
    select patient_key, DFMRC as baseline
    from weekly_values
    where week = 0
),

-- "previous assessment" = the patient's latest strictly earlier assessment with a value for that
-- muscle (by occurred_at; of several at that instant, the last in seq order)
assessment_history as (
    select
        a.*,
        b.baseline as dfmrc_baseline,
        arg_max(a.dfmrc, case when a.dfmrc is not null then a.seq end) over earlier as previous_dfmrc,
        arg_max(a.pfmrc, case when a.pfmrc is not null then a.seq end) over earlier as previous_pfmrc
    from assessments as a
    left join dfmrc_baseline as b using (patient_key)
    window earlier as (
        partition by a.patient_key order by a.occurred_at
        range between unbounded preceding and interval 1 microsecond preceding
    )
),

occurrences as (
    select patient_key, event_id, occurred_at, study_day, seq, 'BLADDER' as flag, false as derived_only
    from reports where bladder_dysfunction
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'BLADDER', false
    from reported where flag = 'bladder_dysfunction'
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'BOWEL', false
    from reports where bowel_dysfunction
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'BOWEL', false
    from reported where flag = 'bowel_dysfunction'
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'SADDLE', false
    from reports where saddle_numbness
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'SADDLE', false
    from reported where flag = 'saddle_anesthesia'
    union all
    -- bilateral symptoms count when the enrollment's affected side is not bilateral
    select r.patient_key, r.event_id, r.occurred_at, r.study_day, r.seq, 'BILATERAL', true
    from reports as r
    join patients as p using (patient_key)
    where r.bilateral_symptoms and p.affected_side is distinct from 'bilateral'
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'BILATERAL', false
    from reported where flag = 'bilateral_symptoms'
    union all
    -- motor: dorsiflexion <= 3 from day 1 when its baseline is >= 4, or a drop of 2+ grades of
    -- either muscle from the previous assessment
    select patient_key, event_id, occurred_at, study_day, seq, 'MOTOR', true
    from assessment_history
    where (study_day >= 1 and dfmrc <= 3 and dfmrc_baseline >= 4)
       or dfmrc <= previous_dfmrc - 2
       or pfmrc <= previous_pfmrc - 2
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'MOTOR', false
    from reported where flag = 'progressive_motor_deficit'
    union all
    -- paresthesia spread: 2+ levels more distal than the previous report of at most 7 days
    -- before, with leg pain 2+ points higher
    select patient_key, event_id, occurred_at, study_day, seq, 'PARESTHESIA_SPREAD', true
    -- previous_report: the immediately previous symptom_report (observations.sql)
    from reports
    where paresthesia_extent >= previous_report.paresthesia_extent + 2
      -- (on epoch microseconds: TIMESTAMPTZ - INTERVAL runs ICU calendar code per row)
      and us_between(previous_report.occurred_at, occurred_at) <= 7 * 86400000000
      and leg_pain >= previous_report.leg_pain + 2
    union all
    select patient_key, event_id, occurred_at, study_day, seq, 'OTHER', false
    from reported where flag = 'other'
),

final as (
    select distinct patient_key, event_id, occurred_at, study_day, seq, flag, derived_only
    from occurrences
)

select * from final
