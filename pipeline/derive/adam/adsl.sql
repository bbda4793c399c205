-- adsl (ADaM ADSL): the subject-level analysis dataset.
-- grain: one row per analysed patient (SAP §1.5: an effective enrollment); keys: STUDYID, USUBJID
-- needs: patients (the derivation's), adam_effective, the variable adam_studyid (the study
--        configuration's study_id)
with enrollments as (
    -- the analysed patients of the derivation (patients.sql: the first effective enrollment, the
    -- earliest effective withdrawal), with the enrollment's age and sex, which no SAP table reads
    select p.*, e.age_years, e.sex
    from patients as p
    join adam_effective as e on e.event_id = p.enrollment_event_id
),

final as (
    select
        getvariable('adam_studyid') as STUDYID,
        concat_ws('-', getvariable('adam_studyid'), e.site_id, e.patient_id) as USUBJID,
        e.patient_id as SUBJID,
        e.site_id as SITEID,
        e.arm as ARM,
        e.arm as TRT01P,
        e.age_years as AGE,
        'YEARS' as AGEU,
        e.sex as SEX,
        e.affected_side as AFFSIDE,
        e.enrolled_at as RANDDTM,
        e.withdrawn_at as WDDTM,
        if(e.withdrawn_at is null, 'ONGOING', 'DISCONTINUED') as EOSSTT,
        'Y' as ITTFL,
        'Y' as SAFFL
    from enrollments as e
)

select * from final
