-- recovery_times (SAP §7): each patient's time to recovery or censoring, the input of the
-- Kaplan–Meier curves and the log-rank test (pipeline/derive/recovery.py).
-- grain: one row per analysed patient; keys: patient_key
-- needs: observations, patients
with reports as (
    select * from observations where event_type = 'symptom_report'
),

recoveries as (
    -- recovery: the first symptom_report at study day >= 1 with global_recovery <= 2 (the first in
    -- seq order has the earliest occurred_at: only its instant matters here)
    select patient_key, min(occurred_at) as recovered_at
    from reports
    where study_day >= 1 and gpe <= 2
    group by patient_key
),

latest_reports as (
    -- the latest symptom_report's instant and study day (the day grows with the instant)
    select patient_key, max(occurred_at) as last_report_at, max(study_day) as last_report_day
    from reports
    group by patient_key
),

final as (
    select
        p.patient_key,
        p.site_id,
        p.patient_id,
        p.arm,
        r.recovered_at is not null as recovered,
        case
            when r.recovered_at is not null then weeks_between(p.enrolled_at, r.recovered_at)
            -- censored at the latest symptom_report; 0 when there is none after day 0
            when l.last_report_day >= 1 then weeks_between(p.enrolled_at, l.last_report_at)
            else 0.0
        end as time_weeks
    from patients as p
    left join recoveries as r using (patient_key)
    left join latest_reports as l using (patient_key)
)

select * from final
