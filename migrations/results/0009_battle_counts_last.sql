-- The latest producer time (occurred_at) of the battles of each (arena, scenario), voided ones
-- too: the arenas page (`/`, "last activity") took a max over every battle of every arena at
-- each recomputation (540 ms at 1.67M battles, and the response cache recomputes at every
-- commit of the results model while events stream in). A running max kept with the counts: a
-- battle folded raises it, a void leaves it (voided battles count as activity), so the store
-- only ever takes the greater, in any batch split.
ALTER TABLE battle_counts ADD COLUMN last_occurred timestamptz;

-- The rows already there: from their battles, as a fold from the log would have left them.
UPDATE battle_counts c SET last_occurred = b.last_occurred
FROM (
    SELECT arena, coalesce(scenario, '') AS scenario, max(occurred_at) AS last_occurred
    FROM battles GROUP BY arena, coalesce(scenario, '')
) b
WHERE b.arena = c.arena AND b.scenario = c.scenario;

ALTER TABLE battle_counts ALTER COLUMN last_occurred SET NOT NULL;
