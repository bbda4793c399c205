-- patient_week (SAP §4): the weekly status of a patient.
-- grain: one row per patient × week that has a LEGPAIN value (week 0 included, status 'baseline')
-- keys: site_id, patient_id, week
-- needs: weekly_values, patients, red_flag_occurrences
with baselines as (
    select * from weekly_values where week = 0
),

weekly as (
    -- this week's values next to their baselines (change and pct_change as in trajectory)
    select
        w.patient_key,
        w.week,
        w.LEGPAIN as legpain,
        w.LEGPAIN - b.LEGPAIN as legpain_change,
        case when b.LEGPAIN <> 0 then 100 * (w.LEGPAIN - b.LEGPAIN) / b.LEGPAIN end as legpain_pct_change,
        w.EXTENT as extent, b.EXTENT as extent_baseline,
        w.DFMRC as dfmrc, b.DFMRC as dfmrc_baseline,
        w.CALF as calf, b.CALF as calf_baseline,
        w.SLR as slr, b.SLR as slr_baseline,
        w.WALK as walk, b.WALK as walk_baseline,
        w.GPE as gpe
    from weekly_values as w
    left join baselines as b using (patient_key)
    where w.LEGPAIN is not null
),

incident_weeks as (
    -- weeks in which an incident red flag (first occurrence at study day >= 1) occurred
    select distinct p.patient_key, analysis_week(o.study_day) as week
    from red_flag_occurrences as o
    join patients as p using (site_id, patient_id)
    where not o.prevalent
),

centralization as (
    select
        *,
        case
            when extent < extent_baseline then 'centralized'
            when extent > extent_baseline then 'peripheralized'
            when extent = extent_baseline then 'unchanged'
        end as centralization,
        -- a weekly mean such as 21/5 is a rounded double: an exact -30 % can come out as
        -- -29.999999999999996; percentages of these small ratios differ by far more than 1e-9
        round(legpain_pct_change, 9) <= -30 as responder
    from weekly
),

signs as (
    -- each sign counts only when both of its values exist (a null comparison counts 0)
    select
        *,
        coalesce(centralization = 'centralized', false)::integer
        + coalesce(dfmrc > dfmrc_baseline or calf >= calf_baseline + 5, false)::integer
        + coalesce(slr >= slr_baseline + 10, false)::integer
        + coalesce(legpain_change <= -2, false)::integer
        + coalesce(
            case when walk_baseline > 0 then walk >= 1.5 * walk_baseline
                 when walk_baseline = 0 then walk >= 10 end,
            false
        )::integer as improvement_signs
    from centralization
),

final as (
    select
        p.site_id,
        p.patient_id,
        p.arm,
        s.week::integer as week,
        case
            when s.week = 0 then 'baseline'
            when i.week is not null then 'red_flag'
            when s.legpain <= 1 and (s.gpe is null or s.gpe <= 2) then 'recovered'
            when s.legpain_change >= 2 or s.centralization = 'peripheralized' then 'worsening'
            when s.responder or s.improvement_signs >= 2 then 'improving'
            else 'unchanged'
        end as status,
        s.centralization,
        s.responder,
        s.improvement_signs
    from signs as s
    join patients as p using (patient_key)
    left join incident_weeks as i using (patient_key, week)
)

select * from final
