-- observations (SAP §1.6, §2, §3): the effective clinical events of analysed patients on the
-- study time line, with categorical fields as their 0–6 / 0–2 levels, in compact types.
-- grain: one row per effective symptom_report, assessment, treatment or red_flag at study day >= -14
-- keys: event_id; seq numbers a patient's observations in the order "last" uses
--       (occurred_at, then recorded_at, then event_id)
-- previous_report: the patient's immediately previous symptom_report in that order (SAP §6)
-- needs: accepted_observations (the accepted events of these four types), effective_events(), patients
with effective as (
    select * from effective_events('accepted_observations')
),

placed as (
    select
        p.patient_key,
        e.event_id,
        e.event_type::enum ('symptom_report', 'assessment', 'treatment', 'red_flag') as event_type,
        e.occurred_at,
        e.recorded_at,
        e.ingested_at,
        study_day(e.occurred_at, p.enrolled_at) as study_day,
        analysis_week(study_day(e.occurred_at, p.enrolled_at))::smallint as week,
        e.leg_pain_nrs::tinyint as leg_pain,
        e.back_pain_nrs::tinyint as back_pain,
        extent_level(e.pain_extent)::tinyint as extent,
        paresthesia_level(e.paresthesia)::tinyint as paresthesia,
        -- paresthesia none => extent none, whatever it holds; a missing extent counts as none
        (case when e.paresthesia = 'none' then 0
              else coalesce(extent_level(e.paresthesia_extent), 0) end)::tinyint as paresthesia_extent,
        e.walking_tolerance_min::smallint as walk,
        e.global_recovery::tinyint as gpe,
        e.bladder_dysfunction,
        e.bowel_dysfunction,
        e.saddle_numbness,
        e.bilateral_symptoms,
        e.slr_angle_deg::tinyint as slr,
        e.dorsiflexion_mrc::tinyint as dfmrc,
        e.plantarflexion_mrc::tinyint as pfmrc,
        e.calf_raise_count::tinyint as calf,
        e.odi_score::tinyint as odi,
        e.modality::enum (
            'physical_therapy', 'dry_needling', 'epidural_steroid', 'oral_steroid', 'nsaid', 'surgery', 'other'
        ) as modality,
        e.flag::enum (
            'bladder_dysfunction', 'bowel_dysfunction', 'saddle_anesthesia', 'progressive_motor_deficit',
            'bilateral_symptoms', 'other'
        ) as flag
    from effective as e
    join patients as p using (site_id, patient_id)
    -- observations before study day -14 take part in no derivation
    where study_day(e.occurred_at, p.enrolled_at) >= -14
),

final as (
    select
        * exclude (recorded_at),
        row_number() over by_time::integer as seq,
        lag(case when event_type = 'symptom_report'
                 then {'occurred_at': occurred_at, 'paresthesia_extent': paresthesia_extent, 'leg_pain': leg_pain}
            end ignore nulls) over by_time as previous_report
    from placed
    window by_time as (partition by patient_key order by occurred_at, recorded_at, event_id)
)

select * from final
