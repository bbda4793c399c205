-- adeff (ADaM BDS): the SAP §3 parameters by analysis week, with the SAP §4 patient-week
-- status on the LEGPAIN records (patient_week has one row per patient-week with a LEGPAIN value).
-- grain: one row per patient × parameter × analysis week (= trajectory)
-- keys: STUDYID, USUBJID, PARAMCD, AVISITN
-- needs: trajectory, patient_week, adam_params (params.csv), the variable adam_studyid
with final as (
    select
        getvariable('adam_studyid') as STUDYID,
        concat_ws('-', getvariable('adam_studyid'), t.site_id, t.patient_id) as USUBJID,
        t.patient_id as SUBJID,
        t.site_id as SITEID,
        t.arm as TRT01P,
        t.arm as TRTP,
        t.param as PARAMCD,
        p.PARAM,
        p.PARAMN,
        t.week as AVISITN,
        if(t.week = 0, 'Baseline', 'Week ' || t.week) as AVISIT,
        t.value as AVAL,
        t.baseline as BASE,
        t.change as CHG,
        t.pct_change as PCHG,
        if(t.week = 0, 'Y', null) as ABLFL,
        if(t.param = 'LEGPAIN', 'Leg pain change from baseline <= -30%', null) as CRIT1,
        case w.responder when true then 'Y' when false then 'N' end as CRIT1FL,
        w.status as PWSTAT,
        w.centralization as CENTRAL,
        w.improvement_signs as IMPSIGN
    from trajectory as t
    left join adam_params as p on p.PARAMCD = t.param
    left join patient_week as w
        on t.param = 'LEGPAIN' and w.site_id = t.site_id and w.patient_id = t.patient_id and w.week = t.week
)

select * from final
