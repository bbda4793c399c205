-- adtte (ADaM ADTTE): time to recovery (SAP §7, as in Peul et al., NEJM 2007).
-- Recovery = the first effective symptom_report at study day >= 1 with global_recovery <= 2;
-- without one the patient is censored at the latest effective symptom_report, or at
-- randomisation (AVAL 0) when none is after day 0. AVAL = (ADTM - STARTDTM) in days / 7,
-- in whole microseconds as the derivation, so that a Kaplan–Meier fit of ADTTE gives
-- recovery_summary exactly.
-- grain: one row per analysed patient (= ADSL); keys: STUDYID, USUBJID, PARAMCD
-- needs: adsl, adam_effective
with reports as (
    -- study day >= 1 <=> at least 24 h after randomisation (SAP §2)
    select
        s.USUBJID,
        r.occurred_at,
        r.global_recovery,
        epoch_us(r.occurred_at) - epoch_us(s.RANDDTM) >= 86400000000 as after_day_0
    from adam_effective as r
    join adsl as s on s.SITEID = r.site_id and s.SUBJID = r.patient_id
    where r.event_type = 'symptom_report'
),

recoveries as (
    select USUBJID, min(occurred_at) as recovered_at
    from reports
    where after_day_0 and global_recovery <= 2
    group by USUBJID
),

latest_reports as (
    select USUBJID, max(occurred_at) as last_report_at
    from reports
    where after_day_0
    group by USUBJID
),

timed as (
    select
        s.*,
        r.recovered_at is not null as recovered,
        coalesce(r.recovered_at, l.last_report_at, s.RANDDTM) as analysis_at,
        l.last_report_at is not null as reported_after_day_0
    from adsl as s
    left join recoveries as r using (USUBJID)
    left join latest_reports as l using (USUBJID)
),

final as (
    select
        STUDYID,
        USUBJID,
        SUBJID,
        SITEID,
        TRT01P,
        TRT01P as TRTP,
        'TTRECOV' as PARAMCD,
        'Time to Recovery (weeks)' as PARAM,
        1 as PARAMN,
        (epoch_us(analysis_at) - epoch_us(RANDDTM)) / 604800000000.0 as AVAL,
        'WEEKS' as AVALU,
        RANDDTM as STARTDTM,
        analysis_at as ADTM,
        if(recovered, 0, 1) as CNSR,
        case
            when recovered then 'RECOVERED: GLOBAL RECOVERY 1-2'
            when reported_after_day_0 then 'LAST SYMPTOM REPORT'
            else 'RANDOMISATION'
        end as EVNTDESC,
        case
            when recovered then null
            when reported_after_day_0 then 'Not recovered by the latest symptom report'
            else 'No symptom report after study day 0'
        end as CNSRDESC
    from timed
)

select * from final
