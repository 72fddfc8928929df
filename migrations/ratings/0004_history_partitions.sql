-- Rating history in two partitions: the arena-wide pools (category '') and the category pools.
-- Pools are rated independently, so a rebuild folds the two halves in two processes at once,
-- each writing and then indexing its own partition while the other may still be folding (see
-- services/rebuild.py). Queries are unchanged: they name the parent table, and one that names a
-- category reads one partition.
ALTER TABLE rating_history RENAME TO rating_history_old;
ALTER TABLE rating_history_old RENAME CONSTRAINT rating_history_pkey TO rating_history_old_pkey;
ALTER INDEX rating_history_pool RENAME TO rating_history_old_pool;

CREATE TABLE rating_history (LIKE rating_history_old INCLUDING DEFAULTS)
    PARTITION BY LIST (category);
CREATE TABLE rating_history_overall PARTITION OF rating_history FOR VALUES IN ('');
CREATE TABLE rating_history_categories PARTITION OF rating_history DEFAULT;
ALTER TABLE rating_history
    ADD CONSTRAINT rating_history_pkey PRIMARY KEY (competitor, arena, category, position);
CREATE INDEX rating_history_pool ON rating_history (arena, category, position);

INSERT INTO rating_history SELECT * FROM rating_history_old;
DROP TABLE rating_history_old;
