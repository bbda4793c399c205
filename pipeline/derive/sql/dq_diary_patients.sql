-- dq_diary_patients (SAP §8): what diary completeness needs to know of each analysed patient.
-- grain: one row per analysed patient; keys: site_id, patient_id
-- A per-patient summary (stored as derive_state.dq_diary_patients): dq_site_week reads it, not the log.
-- needs: patients
with diary_patients as (
    select
        patient_key,
        site_id,
        patient_id,
        enrolled_at,
        epoch_us(enrollment_ingested_at) as enrollment_ingested_us,
        -- diaries are owed up to the end of follow-up (week 52) and, for a withdrawn patient, up to
        -- the week before the withdrawal's week
        least(
            follow_up_weeks(),
            case when withdrawn_at is not null
                 then coalesce(analysis_week(study_day(withdrawn_at, enrolled_at)), 0) - 1 end
        ) as last_owed_week
    from patients
),

final as (
    select * from diary_patients
)

select * from final
