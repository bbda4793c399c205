-- treatment_flares (SAP §5): "worse before better" after each treatment.
-- grain: one row per effective treatment of an analysed patient; keys: treatment_event_id
-- classification: expected_flare | prolonged_flare | no_flare | no_baseline
-- needs: observations, patients
with treatments as (
    select patient_key, event_id, occurred_at, study_day, modality
    from observations
    where event_type = 'treatment'
),

pain as (
    -- observations here: effective symptom_reports with a leg_pain_nrs
    select patient_key, occurred_at, study_day, leg_pain, seq
    from observations
    where event_type = 'symptom_report' and leg_pain is not null
),

treatment_days as (
    -- the study days a treatment's ±7-day window touches (an equi-join key: cheap on many diaries)
    select *, unnest(range(study_day - 8, study_day + 9)) as day
    from treatments
),

around as (
    -- the pain observations from 7 days before to 7 days after each treatment
    select t.event_id as treatment_event_id, t.occurred_at as treated_at, o.occurred_at, o.leg_pain, o.seq
    from treatment_days as t
    join pain as o on o.patient_key = t.patient_key and o.study_day = t.day
    -- |o - t| <= 7 days, on epoch microseconds (TIMESTAMPTZ ± INTERVAL runs ICU calendar code per row)
    where abs(us_between(t.occurred_at, o.occurred_at)) <= 7 * 86400000000
),

pre_pain as (
    -- P0: the latest observation in the 7 days before the treatment
    select treatment_event_id, arg_max(leg_pain, seq) as pre_pain
    from around
    where occurred_at < treated_at
    group by treatment_event_id
),

peaks as (
    -- a flare: leg pain >= P0 + 2 within (T, T + 7 days]; the peak is the highest (first on ties)
    select
        a.treatment_event_id,
        max(a.leg_pain) as peak_pain,
        arg_min(a.occurred_at, (-a.leg_pain, a.seq)) as peak_at
    from around as a
    join pre_pain as p using (treatment_event_id)
    where a.occurred_at > a.treated_at and a.leg_pain >= p.pre_pain + 2
    group by a.treatment_event_id
),

resolutions as (
    -- the flare resolves at the first observation after the peak with leg pain <= P0
    select k.treatment_event_id, min(o.occurred_at) as resolved_at
    from peaks as k
    join pre_pain as p using (treatment_event_id)
    join treatments as t on t.event_id = k.treatment_event_id
    join pain as o on o.patient_key = t.patient_key and o.occurred_at > k.peak_at and o.leg_pain <= p.pre_pain
    group by k.treatment_event_id
),

final as (
    select
        pt.site_id,
        pt.patient_id,
        t.event_id as treatment_event_id,
        t.modality::varchar as modality,
        p.pre_pain::integer as pre_pain,
        k.peak_pain::integer as peak_pain,
        days_between(t.occurred_at, r.resolved_at) as duration_days,
        case
            when p.pre_pain is null then 'no_baseline'
            when k.peak_pain is null then 'no_flare'
            when days_between(t.occurred_at, r.resolved_at) <= 7 then 'expected_flare'
            else 'prolonged_flare'
        end as classification
    from treatments as t
    join patients as pt using (patient_key)
    left join pre_pain as p on p.treatment_event_id = t.event_id
    left join peaks as k on k.treatment_event_id = t.event_id
    left join resolutions as r on r.treatment_event_id = t.event_id
)

select * from final
