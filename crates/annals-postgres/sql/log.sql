-- log: the gap-free global log, one row per (transaction, stream) group of events — per append
-- and stream — rather than per event: positions first_position … first_position + count - 1 go
-- to that stream's versions first_version … first_version + count - 1. The sequencer
-- (positions.sql) writes a group only once its transaction has committed, so positions become
-- visible in order and densely: a reader checkpointed at N never misses a later-committing N-1.
-- UNIQUE(stream_id, first_version) finds an event's group (its position) and tells the sequencer
-- which groups are done.
CREATE TABLE log (
    first_position bigint  PRIMARY KEY,
    stream_id      text    NOT NULL,
    first_version  bigint  NOT NULL,
    count          integer NOT NULL CHECK (count > 0),
    UNIQUE (stream_id, first_version)
);
-- log_head: one row. `position` = the last position handed out; `seen` = the snapshot the last
-- sequencer run read events with (every transaction visible in it has all its events in `log`;
-- NULL before the first run); `fence` = every transaction with an id below it has finished and
-- all its events are in `log` (the xmin of `seen`; what the sequencer went by before `seen`).
CREATE TABLE log_head (
    only_row boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint      NOT NULL,
    fence    xid8        NOT NULL,
    seen     pg_snapshot
);
INSERT INTO log_head (position, fence) VALUES (0, '0');
