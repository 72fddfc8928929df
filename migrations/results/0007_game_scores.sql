-- Game score totals per competitor and pool (issue 13 point 8: seed 003's apples eaten on the
-- leaderboard rows of game arenas and on /competitors/{id}). A running sum kept by the
-- projector, not a query at read time: summing the participants' JSON of a 20k-game arena cost
-- about 105 ms per leaderboard, a primary-key read of these rows costs well under one.
--
-- One row per (arena, pool, competitor) of every game the competitor played: category '' is
-- the arena-wide pool, and a game with a category also counts in that category's pool.
-- total: the exact sum (numeric, the digits of the stored JSON) of the scores of its games that
-- carried one; scored: how many of its games carried a score; games: how many games it played.
-- A void takes its game out of all three; a row whose games are all voided stays with zeros
-- (the store subtracts, it never deletes), as competitor_metrics does, so the incremental model,
-- a rebuild and the audit's replay agree row for row.
CREATE TABLE competitor_game_scores (
    arena       text NOT NULL,
    category    text NOT NULL,
    competitor  text NOT NULL,
    total       numeric NOT NULL,
    scored      bigint NOT NULL,
    games       bigint NOT NULL,
    PRIMARY KEY (arena, category, competitor)
);

-- The games already folded: every player of every game gets its row (voided games too, with
-- nothing summed), exactly what folding the same log afresh would leave.
INSERT INTO competitor_game_scores (arena, category, competitor, total, scored, games)
SELECT g.arena, c.cat, p.value ->> 'competitor',
       coalesce(sum((p.value ->> 'score')::numeric) FILTER (WHERE g.voided_by IS NULL), 0),
       count(p.value ->> 'score') FILTER (WHERE g.voided_by IS NULL),
       count(*) FILTER (WHERE g.voided_by IS NULL)
FROM games g
CROSS JOIN LATERAL jsonb_array_elements(g.participants) AS p
CROSS JOIN LATERAL (VALUES (''), (g.category)) AS c(cat)
WHERE c.cat IS NOT NULL
GROUP BY g.arena, c.cat, p.value ->> 'competitor';
