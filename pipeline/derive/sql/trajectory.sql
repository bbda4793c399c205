-- trajectory (SAP §3): the parameters in long form, with baseline, change and percent change.
-- grain: one row per patient × param × week that has a value
-- keys: site_id, patient_id, param, week
-- baseline = the week-0 value (the latest value of the baseline window, days -14 … 0)
-- change = value − baseline; pct_change = 100 × change / baseline (null when baseline is null or 0)
-- A view over the stored weekly_values: ten rows per patient-week would be the largest table of
-- the warehouse, and writing it cost more than the rest of the derivation of the weeks.
-- It reads stored tables only (no macros, no temporary tables), so any DuckDB client can query it.
-- needs: weekly_values
with long as (
    -- unpivot drops nulls: a week without a value has no row
    unpivot (
        select site_id, patient_id, arm, week, LEGPAIN, BACKPAIN, EXTENT, PARESTH, WALK, GPE, ODI, SLR, DFMRC, CALF
        from weekly_values
    )
    on LEGPAIN, BACKPAIN, EXTENT, PARESTH, WALK, GPE, ODI, SLR, DFMRC, CALF
    into name param value value
),

baselines as (
    select site_id, patient_id, param, value as baseline
    from long
    where week = 0
),

final as (
    select
        l.site_id,
        l.patient_id,
        l.arm,
        l.param,
        l.week::integer as week,
        l.value,
        b.baseline,
        l.value - b.baseline as change,
        case when b.baseline <> 0 then 100 * (l.value - b.baseline) / b.baseline end as pct_change
    from long as l
    left join baselines as b using (site_id, patient_id, param)
)

select * from final
