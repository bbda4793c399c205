-- red_flag_incidence (SAP §6): incidence of each red flag per stratum.
-- grain: one row per stratum × flag (the seven flags and ANY); strata: overall, every registered
--        site, every arm of the study configuration, whether or not they have patients
-- keys: stratum_type, stratum, flag
-- This file builds the counts and point estimates; the exact Poisson and Wilson 95% intervals
-- are added by pipeline/derive/incidence.py (scipy), which writes the final table.
-- needs: derive_state.red_flag_at_risk (every patient's summary), study_sites, study_arms, red_flag_flags
with strata as (
    select 'overall' as stratum_type, 'overall' as stratum
    union all
    select 'site', site_id from study_sites
    union all
    select 'arm', arm from study_arms
),

memberships as (
    select 'overall' as stratum_type, 'overall' as stratum, r.* from derive_state.red_flag_at_risk as r
    union all
    select 'site', r.site_id, r.* from derive_state.red_flag_at_risk as r
    union all
    select 'arm', r.arm, r.* from derive_state.red_flag_at_risk as r
),

counts as (
    select
        stratum_type,
        stratum,
        flag,
        count(*) as at_risk,
        count(*) filter (where is_case) as cases,
        sum(us_at_risk) as us_at_risk
    from memberships
    where at_risk
    group by stratum_type, stratum, flag
),

final as (
    -- strata with nobody at risk are listed: at_risk and cases 0, everything else null
    select
        s.stratum_type,
        s.stratum,
        f.flag,
        coalesce(c.at_risk, 0) as at_risk,
        coalesce(c.cases, 0) as cases,
        c.us_at_risk / 604800000000.0 as patient_weeks,
        case when c.us_at_risk > 0 then 100.0 * c.cases / (c.us_at_risk / 604800000000.0) end
            as rate_per_100pw,
        c.cases / c.at_risk as proportion
    from strata as s
    cross join red_flag_flags as f
    left join counts as c using (stratum_type, stratum, flag)
)

select * from final
