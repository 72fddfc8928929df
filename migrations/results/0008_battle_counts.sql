-- Battles per arena and scenario, live and voided (issue 15 point 1: /summary while events
-- stream in). A running count kept by the projector, not a count at read time: /summary?arena=
-- counted and grouped every battle of the arena (a sequential scan of the battles, about 30 ms
-- at 100k battles), and the response cache recomputes it at every commit of the results model,
-- several times a second while events stream in. These rows are a few per arena.
--
-- live: battles of (arena, scenario) not voided; voided: those voided. A void moves one battle
-- from live to voided; a row whose battles are all voided stays (the store adds and subtracts,
-- it never deletes), as competitor_metrics does, so the incremental model, a rebuild and the
-- audit's replay agree row for row. scenario is '' for the battles without one (an event's
-- scenario is never '': it is an id of at least one character), so that it can be a key.
CREATE TABLE battle_counts (
    arena     text NOT NULL,
    scenario  text NOT NULL,
    live      bigint NOT NULL,
    voided    bigint NOT NULL,
    PRIMARY KEY (arena, scenario)
);

-- The battles already folded: counted from their rows, which hold everything this needs (each
-- battle's arena, scenario and void mark), so no refold is needed: exactly what folding the
-- same log afresh would leave.
INSERT INTO battle_counts (arena, scenario, live, voided)
SELECT arena, coalesce(scenario, ''), count(*) FILTER (WHERE voided_by IS NULL),
       count(*) FILTER (WHERE voided_by IS NOT NULL)
FROM battles
GROUP BY arena, coalesce(scenario, '');
