-- An arena's default Bradley-Terry anchor (arena.configured's bt_anchor): the competitor shown
-- at bt_anchor_rating on its BT boards. Both NULL: the boards anchor the mean at `initial`.
ALTER TABLE arenas ADD COLUMN bt_anchor text, ADD COLUMN bt_anchor_rating float8;
