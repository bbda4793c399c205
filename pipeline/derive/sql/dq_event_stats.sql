-- dq_event_stats (SAP §8): what the accepted events say about a delivery, in one pass over the
-- log for both groupings of the data-quality tables.
-- grain: one row per site × ISO week of ingested_at, and one row per batch (grouping sets);
--        grouping = 'site_week' or 'batch'
-- needs: delivered_events (the accepted events of the batches whose statistics are (re)computed:
--        all of them in a full derivation, those of the site-weeks new batches touch otherwise)
with events as (
    select
        batch_id,
        site_id,
        -- the Monday (UTC) of the ISO week: formatted once per group below, not once per event
        iso_week_start(epoch_us(ingested_at)) as week_start,
        list_contains(warnings, 'late_entry') as late_entry,
        -- recording lag; corrections and retractions are later edits, not late entries (DTS §5)
        case when event_type not in ('correction', 'retraction')
             then us_between(occurred_at, recorded_at) / 3600000000.0 end as lag_hours,
        case when len(warnings) > 0 then warnings end as warnings
    from delivered_events
),

final as (
    select
        case when grouping(batch_id) = 1 then 'site_week' else 'batch' end as grouping,
        site_id,
        iso_week_label(week_start) as iso_week,
        week_start,
        batch_id,
        count(*) filter (where late_entry) as late_entries,
        quantile_cont(lag_hours, 0.5) as lag_p50_hours,
        quantile_cont(lag_hours, 0.9) as lag_p90_hours,
        -- every warning raised on an accepted event (rare: kept as a list)
        flatten(list(warnings) filter (where warnings is not null)) as warnings
    from events
    group by grouping sets ((site_id, week_start), (batch_id))
)

select * from final
