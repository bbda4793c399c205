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
-- Each aggregate is written once, over a list of parameters (COLUMNS, expanded in lockstep
-- where it appears twice); a "last" ranks only the rows that hold a value (its seq is null
-- otherwise).
-- needs: observations, patients
with observed as (
    -- the parameters under their SAP names, and seq: the order "last" uses
    select
        patient_key,
        week,
        leg_pain as LEGPAIN,
        back_pain as BACKPAIN,
        extent as EXTENT,
        paresthesia as PARESTH,
        walk as WALK,
        gpe as GPE,
        odi as ODI,
        slr as SLR,
        dfmrc as DFMRC,
        calf as CALF,
        seq
    from observations
    where event_type in ('symptom_report', 'assessment')
),

baseline_weeks as (
    -- week 0 (the baseline window): every parameter's last value
    select
        patient_key,
        week,
        cast(arg_max(columns(* exclude (patient_key, week, seq)),
                     case when columns(* exclude (patient_key, week, seq)) is not null then seq end) as double)
    from observed
    where week = 0
    group by patient_key, week
),

later_weeks as (
    -- weeks >= 1: means, maxima and last values (each aggregate computed only where it applies;
    -- levels are small integers, every parameter value is a double)
    select
        patient_key,
        week,
        avg(columns(['LEGPAIN', 'BACKPAIN', 'WALK'])),
        cast(max(columns(['EXTENT', 'PARESTH'])) as double),
        cast(arg_max(columns(['GPE', 'ODI', 'SLR', 'DFMRC', 'CALF']),
                     case when columns(['GPE', 'ODI', 'SLR', 'DFMRC', 'CALF']) is not null then seq end) as double)
    from observed
    where week >= 1
    group by patient_key, week
),

weekly as (
    select * from baseline_weeks
    union all by name
    select * from later_weeks
),

final as (
    select
        p.site_id, p.patient_id, p.arm, w.patient_key, w.week,
        w.LEGPAIN, w.BACKPAIN, w.EXTENT, w.PARESTH, w.WALK, w.GPE, w.ODI, w.SLR, w.DFMRC, w.CALF
    from weekly as w
    join patients as p using (patient_key)
)

select * from final
