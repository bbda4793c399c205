-- dq_diary_weeks (SAP §8): each patient's diaries by ISO week of ingestion, for diary completeness.
-- grain: one row per analysed patient × ISO week (Monday 00:00 UTC, epoch µs) in which a diary of the
--        patient was ingested or one of its owed patient-weeks started to count
-- keys: site_id, patient_id, week_start
--   latest_report_at: the latest occurred_at of the patient's diaries ingested that week
--   kept_weeks: the owed patient-weeks (w >= 1) that count from that week on: from the moment both a
--               diary of the week and the enrollment were ingested
-- A per-patient summary (stored as derive_state.dq_diary_weeks): dq_site_week reads it, not the log.
-- needs: observations, patients, dq_diary_patients
with diaries as (
    select patient_key, week, occurred_at, epoch_us(ingested_at) as ingested_us
    from observations
    where event_type = 'symptom_report'
),

reports_by_week as (
    select patient_key, iso_week_start(ingested_us) as week_start, max(occurred_at) as latest_report_at
    from diaries
    group by all
),

diary_weeks as (
    select
        d.patient_key,
        d.week,
        greatest(min(d.ingested_us), any_value(p.enrollment_ingested_us)) as counted_from_us
    from diaries as d
    join dq_diary_patients as p using (patient_key)
    where d.week >= 1 and d.week <= p.last_owed_week
    group by d.patient_key, d.week
),

kept_by_week as (
    select patient_key, iso_week_start(counted_from_us) as week_start, count(*) as kept_weeks
    from diary_weeks
    group by all
),

final as (
    select p.site_id, p.patient_id, week_start, r.latest_report_at, k.kept_weeks
    from reports_by_week as r
    full join kept_by_week as k using (patient_key, week_start)
    join patients as p using (patient_key)
)

select * from final
