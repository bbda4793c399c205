-- dq_rule_counts (SAP §8): rejections and warnings by DTS §5 rule name.
-- grain: one row per batch × kind × rule; kind = 'rejected' (quarantined rows or files)
--        or 'warning' (warnings on accepted events, and unknown_column once per file)
-- keys: batch_id, kind, rule
-- needs: quarantined_rows, dq_event_stats, recounted_batches (the ledger records of the batches counted)
with rejected as (
    select batch_id, unnest(rules) as rule
    from quarantined_rows
    where batch_id in (select batch_id from recounted_batches)
),

warned as (
    select batch_id, unnest(warnings) as rule
    from dq_event_stats
    -- (the statistics may cover more batches than are recounted: those sharing a site-week)
    where grouping = 'batch' and warnings is not null and batch_id in (select batch_id from recounted_batches)
    union all
    select batch_id, 'unknown_column'
    from recounted_batches
    where len(unknown_columns) > 0
),

final as (
    select batch_id, 'rejected' as kind, rule, count(*) as n from rejected group by batch_id, rule
    union all
    select batch_id, 'warning', rule, count(*) from warned group by batch_id, rule
)

select * from final
