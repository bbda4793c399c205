-- dq_site_week (SAP §8): data quality per site and ISO week of ingestion.
-- grain: one row per site × ISO week (of ingested_at, UTC) in which the site delivered a file
-- keys: site_id, iso_week
-- Built from the ledger and small stored summaries (derive_state.*), never from the event log:
-- the events' statistics per site-week and the rule counts per batch, and per patient the diary
-- summaries of dq_diary_patients and dq_diary_weeks.
-- needs: ingest_batches, derive_state.event_stats, derive_state.rule_counts,
--        derive_state.dq_diary_patients, derive_state.dq_diary_weeks
with batches as (
    select
        *,
        strftime(ingested_at, '%G-W%V') as iso_week,
        iso_week_start(epoch_us(ingested_at)) as week_start
    from ingest_batches
    where site_id is not null
),

site_weeks as (
    -- the ledger's counts per file, summed
    select
        site_id,
        iso_week,
        min(week_start) as week_start,
        min(week_start) + 7 * 86400000000 as week_end,
        count(*) as files,
        sum(received)::bigint as received,
        sum(accepted)::bigint as accepted,
        sum(rejected)::bigint as rejected,
        sum(warnings)::bigint as warnings,
        sum(duplicates)::bigint as duplicates
    from batches
    group by site_id, iso_week
),

rules as (
    select
        b.site_id,
        b.iso_week,
        c.kind,
        c.rule,
        sum(c.n)::bigint as n
    from derive_state.rule_counts as c
    join batches as b using (batch_id)
    group by b.site_id, b.iso_week, c.kind, c.rule
),

rules_by_week as (
    select
        site_id,
        iso_week,
        to_json(map(list(rule order by rule) filter (where kind = 'rejected'),
                    list(n order by rule) filter (where kind = 'rejected')))::varchar as rejected_by_rule,
        to_json(map(list(rule order by rule) filter (where kind = 'warning'),
                    list(n order by rule) filter (where kind = 'warning')))::varchar as warnings_by_rule
    from rules
    group by site_id, iso_week
),

-- diary completeness, as it stood at the end of each week: the enrolled, not withdrawn
-- patient-weeks (w >= 1, up to the week of the site's latest report ingested by then) that have
-- at least one symptom_report ingested by then
latest_report_by_week as (
    select site_id, week_start, max(latest_report_at) as latest_report_at
    from derive_state.dq_diary_weeks
    where latest_report_at is not null
    group by site_id, week_start
),

site_week_latest as (
    select w.site_id, w.iso_week, w.week_end, max(l.latest_report_at) as latest_report_at
    from site_weeks as w
    join latest_report_by_week as l on l.site_id = w.site_id and l.week_start <= w.week_start
    group by w.site_id, w.iso_week, w.week_end
),

owed as (
    select
        w.site_id,
        w.iso_week,
        sum(greatest(
            least(coalesce(analysis_week(study_day(w.latest_report_at, p.enrolled_at)), 0), p.last_owed_week),
            0
        )) as owed_weeks
    from site_week_latest as w
    join derive_state.dq_diary_patients as p on p.site_id = w.site_id and p.enrollment_ingested_us < w.week_end
    group by w.site_id, w.iso_week
),

kept_by_week as (
    select site_id, week_start, sum(kept_weeks) as n
    from derive_state.dq_diary_weeks
    where kept_weeks is not null
    group by site_id, week_start
),

kept as (
    select w.site_id, w.iso_week, sum(k.n)::bigint as kept_weeks
    from site_weeks as w
    join kept_by_week as k on k.site_id = w.site_id and k.week_start <= w.week_start
    group by w.site_id, w.iso_week
),

last_files as (
    select site_id, max(ingested_at) as last_file_at
    from batches
    group by site_id
),

final as (
    select
        w.site_id,
        w.iso_week,
        w.received,
        w.accepted,
        w.rejected,
        w.warnings,
        w.duplicates,
        coalesce(e.late_entries, 0) as late_entries,
        e.lag_p50_hours,
        e.lag_p90_hours,
        case when o.owed_weeks > 0 then coalesce(k.kept_weeks, 0) / o.owed_weeks end as diary_completeness,
        w.files,
        coalesce(r.rejected_by_rule, '{}') as rejected_by_rule,
        coalesce(r.warnings_by_rule, '{}') as warnings_by_rule,
        -- days from the site's last file to the latest ingestion in the warehouse (as of the cutoff)
        days_between(f.last_file_at, (select max(ingested_at) from batches)) as days_since_last_file
    from site_weeks as w
    left join derive_state.event_stats as e
        on e.grouping = 'site_week' and e.site_id = w.site_id and e.iso_week = w.iso_week
    left join rules_by_week as r on r.site_id = w.site_id and r.iso_week = w.iso_week
    left join owed as o on o.site_id = w.site_id and o.iso_week = w.iso_week
    left join kept as k on k.site_id = w.site_id and k.iso_week = w.iso_week
    left join last_files as f on f.site_id = w.site_id
)

select * from final
