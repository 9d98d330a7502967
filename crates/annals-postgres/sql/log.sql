-- log: the gap-free global log, one row per (transaction, stream) group of events — per append
-- and stream — rather than per event: positions first_position … first_position + count - 1 go
-- to that stream's versions first_version … first_version + count - 1. The sequencer
-- (positions.sql) writes a group only once its transaction has committed, so positions become
-- visible in order and densely: a reader checkpointed at N never misses a later-committing N-1.
-- UNIQUE(stream_id, first_version) finds an event's group (its position) and tells the sequencer
-- which groups are done.
-- `seen`, on the last group of each sequencer run only: the snapshot that run read events with
-- (every transaction visible in it has all its events in the log); the next run starts from it.
CREATE TABLE log (
    first_position bigint      PRIMARY KEY,
    stream_id      text        NOT NULL,
    first_version  bigint      NOT NULL,
    count          integer     NOT NULL CHECK (count > 0),
    seen           pg_snapshot,
    UNIQUE (stream_id, first_version)
);
-- log_head: one row, no longer written since migration 11 (the head is the log's newest group).
-- `fence`: every transaction with an id below it had finished and all its events were in `log`
-- when the last run before migration 11 ended; the first run after it starts there.
CREATE TABLE log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint  NOT NULL,
    fence    xid8    NOT NULL
);
INSERT INTO log_head (position, fence) VALUES (0, '0');
