-- 0007: budgets — what each function's executions may spend — and an index to sum what one caller's executions spent.
--
-- `max_cost_usd` (one run, US dollars), `daily_cost_usd` (one UTC day, US dollars) and `daily_tokens` (one UTC day)
-- are columns of `functions`, NULL for no limit: every function made before has none.
--
-- Spend is summed from the executions' stored usage (`src/spend.rs`), over the executions created since the start
-- of the day, read by id range: ids are UUID v7, so the executions of a time span are one range of the table's key,
-- and one range of `executions_by_function` for one function's spend. A caller's spend (a token's daily budget) is
-- checked on every trigger by that caller, so it gets the same: `executions_by_caller`, in id order within each
-- caller. It is partial: an execution nobody named (`triggered_by` NULL: no authentication) writes nothing there,
-- and `triggered_by` never changes after an execution is created, so a status change does not touch it.

ALTER TABLE functions ADD COLUMN max_cost_usd REAL;
ALTER TABLE functions ADD COLUMN daily_cost_usd REAL;
ALTER TABLE functions ADD COLUMN daily_tokens INTEGER;

CREATE INDEX executions_by_caller ON executions (triggered_by, id) WHERE triggered_by IS NOT NULL;
