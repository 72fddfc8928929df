-- Rating history in two partitions: the arena-wide pools (category '') and the category pools.
-- Pools are rated independently, so a rebuild folds the two halves in two processes at once,
-- each writing and then indexing its own partition while the other may still be folding (see
-- services/rebuild.py). Queries are unchanged: they name the parent table, and one that names a
-- category reads one partition.
--
-- One index instead of two: the key now leads with the pool, (arena, category, competitor,
-- position), which serves a competitor's history in a pool (the API's history, placement and
-- as-of boards) and a whole pool's history (pairs and boards as of a past position) alike; a
-- competitor's history across pools is a skip scan over the few (arena, category) pairs. The
-- separate pool index is gone, and with it a third of what a rebuild spends indexing.
ALTER TABLE rating_history RENAME TO rating_history_old;
ALTER TABLE rating_history_old RENAME CONSTRAINT rating_history_pkey TO rating_history_old_pkey;
DROP INDEX rating_history_pool;

CREATE TABLE rating_history (LIKE rating_history_old INCLUDING DEFAULTS)
    PARTITION BY LIST (category);
CREATE TABLE rating_history_overall PARTITION OF rating_history FOR VALUES IN ('');
CREATE TABLE rating_history_categories PARTITION OF rating_history DEFAULT;
ALTER TABLE rating_history
    ADD CONSTRAINT rating_history_pkey PRIMARY KEY (arena, category, competitor, position);

INSERT INTO rating_history SELECT * FROM rating_history_old;
DROP TABLE rating_history_old;
