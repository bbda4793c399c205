-- red_flag_occurrences (SAP §6): each patient's first occurrence of each of the seven flags.
-- grain: one row per patient × flag that occurred (ANY is not listed here)
-- keys: site_id, patient_id, flag
-- prevalent: the first occurrence has study day <= 0 (the patient is not at risk for that flag)
-- needs: red_flag_events, patients
with firsts as (
    select *
    from red_flag_events
    qualify row_number() over (partition by patient_key, flag order by seq) = 1
),

final as (
    select
        p.site_id,
        p.patient_id,
        p.arm,
        f.flag,
        f.event_id,
        f.occurred_at,
        f.study_day,
        f.study_day <= 0 as prevalent
    from firsts as f
    join patients as p using (patient_key)
)

select * from final
