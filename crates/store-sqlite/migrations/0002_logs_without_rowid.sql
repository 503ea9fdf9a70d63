-- Log lines without a rowid: the primary key (execution_id, seq) becomes the table itself, so storing a line writes
-- one B-tree instead of two (the rowid table and the key's own index, each with a copy of the execution id). Lines
-- are small rows, which is where WITHOUT ROWID pays; reads by execution and seq use the same key as before.

CREATE TABLE logs_by_key (
    execution_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    ts           TEXT NOT NULL,
    stream       TEXT NOT NULL,
    message      TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

INSERT INTO logs_by_key (execution_id, seq, ts, stream, message)
    SELECT execution_id, seq, ts, stream, message FROM logs;
DROP TABLE logs;
ALTER TABLE logs_by_key RENAME TO logs;
