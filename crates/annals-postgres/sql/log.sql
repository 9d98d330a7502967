-- log: the gap-free global log. Position N is assigned to an event row by the sequencer
-- (positions.sql) only once the row's transaction has committed, so positions become visible in
-- order and densely: a reader checkpointed at N never misses a later-committing N-1.
CREATE TABLE log (
    position  bigint PRIMARY KEY,
    event_row bigint NOT NULL UNIQUE   -- events.id; no foreign key: checking it would lock every event row
);
-- log_head: one row. `position` = the last position handed out; `fence` = every transaction with
-- an id below it has finished and all its events are in `log`.
CREATE TABLE log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint  NOT NULL,
    fence    xid8    NOT NULL
);
INSERT INTO log_head (position, fence) VALUES (0, '0');
