-- A competitor's pairs by either side (GET /head-to-head?competitor=): the key finds the pairs
-- where it is `x`; this index finds those where it is `y`. Without it the route filtered every
-- pair of the pool (4,950 among 100 competitors) at each recomputation, several a second while
-- events stream in. y never changes once a pair exists, so the projector's count updates stay
-- heap-only (HOT) and do not touch this index.
CREATE INDEX pairs_second ON pairs (arena, category, y);
