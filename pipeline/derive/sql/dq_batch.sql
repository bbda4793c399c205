-- dq_batch (SAP §8): data quality of every delivered file.
-- grain: one row per batch (ingested file, also a file rejected whole or a file duplicate)
-- keys: batch_id
-- needs: ingest_batches, derive_state.event_stats, derive_state.rule_counts (every batch's statistics)
with rules as (
    select
        batch_id,
        to_json(map(list(rule order by rule) filter (where kind = 'rejected'),
                    list(n order by rule) filter (where kind = 'rejected')))::varchar as rejected_by_rule,
        to_json(map(list(rule order by rule) filter (where kind = 'warning'),
                    list(n order by rule) filter (where kind = 'warning')))::varchar as warnings_by_rule
    from derive_state.rule_counts
    group by batch_id
),

final as (
    select
        b.batch_id,
        b.site_id,
        b.source_file,
        b.status,
        b.ingested_at,
        strftime(b.ingested_at, '%G-W%V') as iso_week,
        b.received,
        b.accepted,
        b.rejected,
        b.warnings,
        b.duplicates,
        coalesce(e.late_entries, 0) as late_entries,
        e.lag_p50_hours,
        e.lag_p90_hours,
        coalesce(r.rejected_by_rule, '{}') as rejected_by_rule,
        coalesce(r.warnings_by_rule, '{}') as warnings_by_rule
    from ingest_batches as b
    left join derive_state.event_stats as e on e.grouping = 'batch' and e.batch_id = b.batch_id
    left join rules as r on r.batch_id = b.batch_id
)

select * from final
