-- patients (SAP §1.5, §2): the analysed patients, those with an effective enrollment.
-- grain: one row per patient; keys: site_id, patient_id (patient_key: a compact integer alias)
-- needs: log_anchors, effective_events()
with anchors as (
    select * from effective_events('log_anchors')
),

enrollments as (
    select *
    from anchors
    where event_type = 'enrollment'
    -- the DTS allows one enrollment per patient; should two remain, the first counts
    qualify row_number() over (
        partition by site_id, patient_id order by occurred_at, recorded_at, event_id
    ) = 1
),

withdrawals as (
    select site_id, patient_id, min(occurred_at) as withdrawn_at, max(occurred_at) as last_withdrawal_at
    from anchors
    where event_type = 'withdrawal'
    group by site_id, patient_id
),

final as (
    select
        row_number() over (order by e.site_id, e.patient_id)::integer as patient_key,
        e.site_id,
        e.patient_id,
        e.arm,
        e.affected_side,
        e.occurred_at as enrolled_at,
        e.event_id as enrollment_event_id,
        e.ingested_at as enrollment_ingested_at,
        w.withdrawn_at,
        -- the latest of the patient's enrollment and withdrawal instants (observations: see red_flag_at_risk)
        greatest(e.occurred_at, w.last_withdrawal_at) as last_anchor_at
    from enrollments as e
    left join withdrawals as w using (site_id, patient_id)
)

select * from final
