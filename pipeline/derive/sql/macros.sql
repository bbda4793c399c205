-- macros: the small vocabulary every derivation shares (SAP §2, §3).
-- Instants are TIMESTAMPTZ (UTC); differences are taken in whole microseconds,
-- so sums and comparisons are exact and do not depend on evaluation order.

create or replace temp macro us_between(t0, t1) as epoch_us(t1) - epoch_us(t0);

-- integer division rounding towards minus infinity (duckdb's // truncates)
create or replace temp macro floor_div(a, b) as (a - (((a % b) + b) % b)) // b;

-- SAP §2: study day = floor((occurred_at - enrolled_at) / 24 h), on absolute instants
create or replace temp macro study_day(t, enrolled_at) as
    floor_div(us_between(enrolled_at, t), 86400000000)::integer;

-- SAP §2: week 0 = days -14 … 0; week w >= 1 = days 7(w-1)+1 … 7w; earlier days have no week
create or replace temp macro analysis_week(day) as
    case when day >= 1 then ((day + 6) // 7)::integer when day >= -14 then 0 end;

-- the Monday 00:00 UTC of the ISO week of an instant given in epoch microseconds (1970-01-01 was a
-- Thursday), in epoch microseconds: integer arithmetic instead of date_trunc('week', t), which runs
-- ICU time-zone code per row
create or replace temp macro iso_week_start(us) as
    floor_div(us + 3 * 86400000000, 7 * 86400000000) * (7 * 86400000000) - 3 * 86400000000;
-- its ISO year-week label, e.g. 2024-W01 (formatted once per group, on a plain timestamp)
create or replace temp macro iso_week_label(week_start_us) as strftime(make_timestamp(week_start_us), '%G-W%V');

-- elapsed time in (fractional) days and weeks
create or replace temp macro days_between(t0, t1) as us_between(t0, t1) / 86400000000.0;
create or replace temp macro weeks_between(t0, t1) as us_between(t0, t1) / 604800000000.0;

-- SAP §3: pain_extent (and paresthesia_extent) as 0–6, paresthesia as 0–2
create or replace temp macro extent_level(x) as
    case x when 'none' then 0 when 'back' then 1 when 'buttock' then 2 when 'thigh' then 3
           when 'knee' then 4 when 'calf' then 5 when 'foot' then 6 end;
create or replace temp macro paresthesia_level(x) as
    case x when 'none' then 0 when 'tingling' then 1 when 'numbness' then 2 end;

-- the SAP follows a patient for one year: its last time point is week 52 (§7)
create or replace temp macro follow_up_weeks() as 52;
