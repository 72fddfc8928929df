-- The metric sums behind the leaderboard's averages keep the trials of each experiment apart,
-- by the experiment's owner (the source of its first trial, '' for none), so that a caller is
-- shown averages over battles and the trials of experiments it may read only (issue 11: a private
-- experiment leaks through no shared route, the leaderboard and its stream included).
-- Battles' rows have of_trials false and owner ''. The sums are recomputed from the battles and
-- trials tables (voided ones left out), which hold every metric the fold ever summed.

ALTER TABLE competitor_metrics ADD COLUMN of_trials boolean NOT NULL DEFAULT false;
ALTER TABLE competitor_metrics ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE competitor_metrics DROP CONSTRAINT competitor_metrics_pkey;
TRUNCATE competitor_metrics;
ALTER TABLE competitor_metrics
    ADD PRIMARY KEY (arena, category, competitor, metric, of_trials, owner);

INSERT INTO competitor_metrics (arena, category, competitor, metric, total, count)
SELECT arena, cat, competitor, key, sum(value::numeric), count(*)
FROM (
    SELECT b.arena, c.cat, CASE s.side WHEN 'a' THEN b.a ELSE b.b END AS competitor, m.key,
           m.value
    FROM battles b
    CROSS JOIN LATERAL (VALUES ('a'), ('b')) AS s(side)
    CROSS JOIN LATERAL jsonb_each_text(b.metrics -> s.side) AS m
    CROSS JOIN LATERAL (VALUES (''), (b.category)) AS c(cat)
    WHERE b.metrics IS NOT NULL AND c.cat IS NOT NULL AND b.voided_by IS NULL
) x
GROUP BY arena, cat, competitor, key;

INSERT INTO competitor_metrics (arena, category, competitor, metric, of_trials, owner, total, count)
SELECT arena, cat, competitor, key, true, owner, sum(value::numeric), count(*)
FROM (
    SELECT t.arena, c.cat, t.competitor, m.key, m.value,
           coalesce((SELECT f.source FROM trials f WHERE f.experiment_id = t.experiment_id
                     ORDER BY f.position LIMIT 1), '') AS owner
    FROM trials t
    CROSS JOIN LATERAL jsonb_each_text(t.metrics) AS m
    CROSS JOIN LATERAL (VALUES (''), (t.category)) AS c(cat)
    WHERE t.status = 'completed' AND c.cat IS NOT NULL AND t.voided_by IS NULL
) x
GROUP BY arena, cat, competitor, key, owner;
