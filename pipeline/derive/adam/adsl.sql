-- adsl (ADaM ADSL): the subject-level analysis dataset.
-- grain: one row per analysed patient (SAP §1.5: an effective enrollment); keys: STUDYID, USUBJID
-- needs: adam_effective, the variable adam_studyid (the study configuration's study_id)
with enrollments as (
    select *
    from adam_effective
    where event_type = 'enrollment'
    -- the DTS allows one enrollment per patient; should two remain, the first counts (as the derivation)
    qualify row_number() over (
        partition by site_id, patient_id order by occurred_at, recorded_at, event_id
    ) = 1
),

withdrawals as (
    select site_id, patient_id, min(occurred_at) as withdrawn_at
    from adam_effective
    where event_type = 'withdrawal'
    group by site_id, patient_id
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
        e.occurred_at as RANDDTM,
        w.withdrawn_at as WDDTM,
        if(w.withdrawn_at is null, 'ONGOING', 'DISCONTINUED') as EOSSTT,
        'Y' as ITTFL,
        'Y' as SAFFL
    from enrollments as e
    left join withdrawals as w using (site_id, patient_id)
)

select * from final
