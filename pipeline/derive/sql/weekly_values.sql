-- weekly_values (SAP §3): every parameter's weekly value, one wide row per patient-week.
-- grain: one row per patient × week with any symptom_report or assessment; keys: site_id, patient_id, week
-- A stored table: the view `trajectory` is its long form (patient_key is this derivation's
-- integer alias of the patient, for the joins of the other steps; it changes between derivations).
--
--   param     source field              weekly value (w >= 1)   week 0 (baseline window)
--   LEGPAIN   leg_pain_nrs              mean                    last
--   BACKPAIN  back_pain_nrs             mean                    last
--   EXTENT    pain_extent (0–6)         max                     last
--   PARESTH   paresthesia (0–2)         max                     last
--   WALK      walking_tolerance_min     mean                    last
--   GPE       global_recovery           last                    last
--   ODI       odi_score                 last                    last
--   SLR       slr_angle_deg             last                    last
--   DFMRC     dorsiflexion_mrc          last                    last
--   CALF      calf_raise_count          last                    last
--
-- "last" = the greatest seq (latest occurred_at, then recorded_at, then event_id); null values
-- do not count; a parameter without a value that week is null here (no trajectory row).
-- needs: observations, patients
with observed as (
    select *
    from observations
    where event_type in ('symptom_report', 'assessment')
),

baseline_weeks as (
    -- week 0 (the baseline window): every parameter's last value
    select
        patient_key,
        week,
        cast(arg_max(leg_pain, seq) filter (where leg_pain is not null) as double) as LEGPAIN,
        cast(arg_max(back_pain, seq) filter (where back_pain is not null) as double) as BACKPAIN,
        cast(arg_max(extent, seq) filter (where extent is not null) as double) as EXTENT,
        cast(arg_max(paresthesia, seq) filter (where paresthesia is not null) as double) as PARESTH,
        cast(arg_max(walk, seq) filter (where walk is not null) as double) as WALK,
        cast(arg_max(gpe, seq) filter (where gpe is not null) as double) as GPE,
        cast(arg_max(odi, seq) filter (where odi is not null) as double) as ODI,
        cast(arg_max(slr, seq) filter (where slr is not null) as double) as SLR,
        cast(arg_max(dfmrc, seq) filter (where dfmrc is not null) as double) as DFMRC,
        cast(arg_max(calf, seq) filter (where calf is not null) as double) as CALF
    from observed
    where week = 0
    group by patient_key, week
),

later_weeks as (
    -- weeks >= 1: means, maxima and last values (each aggregate computed only where it applies)
    select
        patient_key,
        week,
        avg(leg_pain) as LEGPAIN,
        avg(back_pain) as BACKPAIN,
        -- levels are small integers; every parameter value is a double
        cast(max(extent) as double) as EXTENT,
        cast(max(paresthesia) as double) as PARESTH,
        avg(walk) as WALK,
        cast(arg_max(gpe, seq) filter (where gpe is not null) as double) as GPE,
        cast(arg_max(odi, seq) filter (where odi is not null) as double) as ODI,
        cast(arg_max(slr, seq) filter (where slr is not null) as double) as SLR,
        cast(arg_max(dfmrc, seq) filter (where dfmrc is not null) as double) as DFMRC,
        cast(arg_max(calf, seq) filter (where calf is not null) as double) as CALF
    from observed
    where week >= 1
    group by patient_key, week
),

weekly as (
    select * from baseline_weeks
    union all
    select * from later_weeks
),

final as (
    select p.site_id, p.patient_id, p.arm, w.*
    from weekly as w
    join patients as p using (patient_key)
)

select * from final
