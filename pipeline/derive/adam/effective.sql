-- adam_effective (SAP §1): the effective enrollments, withdrawals and symptom_reports, with the
-- payload fields the ADaM datasets need (age_years and sex, which no SAP derivation reads).
-- Corrections and retractions are applied by the derivation's own effective_events()
-- (sql/effective_events.sql), the one definition of SAP §1.
-- grain: one row per effective enrollment, withdrawal or symptom_report; keys: event_id
-- needs: accepted_events (already cut at the export's as-of instant), log_anchors and the macro
--        effective_events() of the derivation in the same connection
with effective as (
    select * from effective_events('accepted_events')
),

final as (
    select
        event_id, event_type, site_id, patient_id, recorded_at, occurred_at,
        arm, age_years, sex, affected_side, global_recovery
    from effective
    where event_type in ('enrollment', 'withdrawal', 'symptom_report')
)

select * from final
