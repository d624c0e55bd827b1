-- The UTC bounds of each day in a list (parley_analytics_recompute).
CREATE OR REPLACE FUNCTION parley_analytics_days(p_days date[])
RETURNS TABLE (day date, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $fn$
    SELECT DISTINCT x, x::timestamp AT TIME ZONE 'UTC', (x + 1)::timestamp AT TIME ZONE 'UTC'
    FROM unnest(p_days) AS x
$fn$;
