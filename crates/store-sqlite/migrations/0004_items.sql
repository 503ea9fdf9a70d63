-- 0004: transcript items — what an agent did, structured — beside an execution's log lines.
--
-- Keyed by (execution_id, seq), without a rowid, like the log: the transcript is read in seq order (the status page,
-- `GET /api/executions/{id}/items?after=`, the live stream's catch-up), and with seq in the key those reads walk the
-- table itself, one range of one B-tree, with no lookup per item. An upsert finds an item by its id through
-- `items_by_item_id`, which holds only the two ids and the seq; an update changes status, body and `updated_at`,
-- never the id or the seq, so it rewrites the table's row and leaves the index alone. The next seq is the key's
-- `MAX(seq)` for the execution. The body columns come last, so a row's key and small columns stay at its front.
--
-- `body` is the item's kind and fields as one JSON object (`{"kind": "command", "command": …}`); `kind` repeats the
-- kind as a column of its own, to filter on without reading the JSON.
--
-- A new, empty table: the migration copies nothing.

CREATE TABLE items (
    execution_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    item_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    ts           TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

-- Upserts by id; an id is unique within its execution.
CREATE UNIQUE INDEX items_by_item_id ON items (execution_id, item_id);
