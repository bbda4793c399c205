-- trajectory (SAP §3): the parameters in long form, with baseline, change and percent change.
-- grain: one row per patient × param × week that has a value
-- keys: site_id, patient_id, param, week
-- baseline = the week-0 value (the latest value of the baseline window, days -14 … 0)
-- change = value − baseline; pct_change = 100 × change / baseline (null when baseline is null or 0)
-- needs: weekly_values, patients
with long as (
    -- unpivot drops nulls: a week without a value has no row
    unpivot weekly_values
    on LEGPAIN, BACKPAIN, EXTENT, PARESTH, WALK, GPE, ODI, SLR, DFMRC, CALF
    into name param value value
),

baselines as (
    select patient_key, param, value as baseline
    from long
    where week = 0
),

final as (
    select
        p.site_id,
        p.patient_id,
        p.arm,
        l.param,
        l.week::integer as week,
        l.value,
        b.baseline,
        l.value - b.baseline as change,
        case when b.baseline <> 0 then 100 * (l.value - b.baseline) / b.baseline end as pct_change
    from long as l
    join patients as p using (patient_key)
    left join baselines as b using (patient_key, param)
)

select * from final
