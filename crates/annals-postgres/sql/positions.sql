-- log_tip(): the log's newest group as the sequencer left it: the last position handed out (0
-- for an empty log) and the snapshot of the run that wrote it (NULL for an empty log or one
-- migrated from before 11). One backward probe of the log's primary key.
CREATE OR REPLACE FUNCTION log_tip() RETURNS TABLE (last bigint, seen pg_snapshot) LANGUAGE sql STABLE AS $$
    SELECT coalesce(g.last, 0), g.seen
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (SELECT l.first_position + l.count - 1 AS last, l.seen FROM log l
                       ORDER BY l.first_position DESC LIMIT 1) g ON true
$$;

-- unsequenced(since, snap): each committed transaction's events of one stream (consecutive
-- versions) that the sequencer's last run did not see: the transactions running at its snapshot
-- `snap` and those from `since` (that snapshot's xmax) on. Without a snapshot (NULL: an empty log,
-- or one migrated from before 11), everything from `since` (the old fence) not yet in the log.
-- The range on events.tx is written two-sided because the planner, without statistics on a young
-- table (or with a parameter, in a cached plan), guesses a third of the table for an open range
-- and would scan all of it, but 0.5% for a closed one; the upper bound is not a bound at all (no
-- transaction id reaches it): a real one taken before the insert's snapshot would let a younger
-- transaction's v1 miss a batch that takes an older transaction's v2. LATERAL … LIMIT 1 makes
-- "not yet in the log" one index probe per candidate, never a hash join over the whole log.
-- A plain SQL function: PostgreSQL inlines it into the caller's query and plan.
CREATE OR REPLACE FUNCTION unsequenced(since xid8, snap pg_snapshot)
RETURNS TABLE (tx xid8, stream_id text, first_version bigint, n integer) LANGUAGE sql STABLE AS $$
    SELECT p.tx, p.stream_id, p.first_version, p.n
    FROM (SELECT e.tx, e.stream_id, min(e.version) AS first_version, count(*)::int AS n
          FROM events e
          WHERE (e.tx >= since AND e.tx < '18446744073709551615'::xid8)
             OR e.tx = ANY (ARRAY(SELECT pg_snapshot_xip(snap)))
          GROUP BY e.tx, e.stream_id) p
    LEFT JOIN LATERAL (SELECT 1 AS done FROM log l
                       WHERE snap IS NULL AND l.stream_id = p.stream_id AND l.first_version = p.first_version
                       LIMIT 1) d ON true
    WHERE d.done IS NULL
$$;

-- assign_positions(): gives global positions to every committed event row that has none, and returns the
-- head. Callers serialize on a transaction-level advisory lock (no transaction id, no WAL until
-- there is work); any caller may run it: each store's background sequencer after appends, and
-- readers at the head of the log (so they see appends that returned a moment ago).
--
-- Which rows: those of the transactions the last run did not see. Each run stores, on the last
-- group it writes to the log (`log.seen`), the snapshot its own insert ran with; a transaction
-- visible in it had every row taken by that run, so the candidates now are the transactions it
-- did not see: those running then (its xip list) and those from its xmax on — two index probes
-- on events.tx, however old the oldest running transaction is. The head (the last position) is
-- read from the log's newest group too: nothing is updated in place, so a transaction held open
-- elsewhere leaves no chain of dead row versions to walk. (Until migration 11 the candidates were
-- every transaction from the oldest one running at the last run, the fence kept in `log_head`,
-- minus the groups already in the log, and `log_head` was updated on every run: one transaction
-- held open anywhere in the cluster made every run re-read every event written since it began,
-- and walk every version of `log_head` written since. A log whose newest group has no snapshot,
-- one migrated from before 11 or an empty one, takes that path for one run: the "already in the
-- log" probe runs only while `snap` is NULL.)
--
-- Order: groups — one transaction's events of one stream — by (transaction, stream), then each
-- stream's slots are given to its groups in version order (zipped); positions are the running
-- sum of the group sizes in slot order.
-- That keeps per-stream order even when a transaction that took its id early wrote v2 after a
-- younger transaction wrote v1: any snapshot that sees v2 sees v1, so both are in this batch or
-- v1 is in an earlier one.
-- `check_first` (the default): look for work before taking the lock, so a reader at the head
-- pays no lock and no transaction id when there is none. The background sequencer, woken by
-- appends, knows there is work and skips the look.
-- `jit = off`: the planner prices the scan of `events` from the table's size (a fixed share of
-- it), so past a few million events the plan's cost passes jit_above_cost and every run spent
-- about 25 ms compiling expressions for a few hundred rows (28.8 ms a run instead of 3.4 ms in an
-- 8-million-event table, measured with 16 appenders).
CREATE OR REPLACE FUNCTION assign_positions(check_first boolean DEFAULT true) RETURNS bigint LANGUAGE plpgsql
SET jit = off SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    head bigint;
    snap pg_snapshot;
    since xid8;
    added bigint;
    pending boolean;
BEGIN
    -- The plan is generic (`plan_cache_mode`): the custom plans PostgreSQL would otherwise keep
    -- making, since they look cheaper with the values known, cost a planning per run (a single
    -- appender's append + run: 0.59 ms instead of 0.31 ms). A generic plan is kept for the
    -- session, so it must not depend on the table's size when it was made: with only index plans
    -- allowed (`enable_seqscan` etc. off), a plan made while `events` was nearly empty cannot be
    -- a sequential scan that every later run repeats over the whole table (the bench caught one:
    -- 20 ms a run, 179 000 rows read for 760).
    IF check_first THEN
        SELECT t.last, t.seen, coalesce(pg_snapshot_xmax(t.seen), (SELECT h.fence FROM log_head h))
        INTO head, snap, since FROM log_tip() t;
        SELECT EXISTS (SELECT 1 FROM unsequenced(since, snap)) INTO pending;
        IF NOT pending THEN
            -- The head again, from a snapshot newer than the look: a run that committed between
            -- the two statements above took the rows the look did not find, and the first head
            -- read is from before it (a fresh store, whose empty log makes the look probe the
            -- log, once answered 0 with three events committed and sequenced).
            SELECT t.last INTO head FROM log_tip() t;
            RETURN head;
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('annals.sequencer.' || current_schema()));
    SELECT t.last, t.seen, coalesce(pg_snapshot_xmax(t.seen), (SELECT h.fence FROM log_head h))
    INTO head, snap, since FROM log_tip() t;
    WITH fresh AS (
        SELECT * FROM unsequenced(since, snap)
    ), slotted AS (
        SELECT f.*, row_number() OVER (ORDER BY f.tx, f.stream_id) AS slot FROM fresh f
    ), per_stream AS (
        -- Each stream's slots go to its groups in version order.
        SELECT s.stream_id, array_agg(s.slot ORDER BY s.slot) AS slots,
               array_agg(s.first_version ORDER BY s.first_version) AS versions,
               array_agg(s.n ORDER BY s.first_version) AS counts
        FROM slotted s GROUP BY s.stream_id
    ), placed AS (
        SELECT u.slot, p.stream_id, u.first_version, u.n
        FROM per_stream p, unnest(p.slots, p.versions, p.counts) AS u(slot, first_version, n)
    ), ins AS (
        -- The run's last group carries this statement's own snapshot: every transaction it sees
        -- has had all its rows taken now.
        INSERT INTO log (first_position, stream_id, first_version, count, seen)
        SELECT head + sum(pl.n) OVER (ORDER BY pl.slot) - pl.n + 1, pl.stream_id, pl.first_version, pl.n,
               CASE WHEN pl.slot = count(*) OVER () THEN pg_current_snapshot() END
        FROM placed pl
        RETURNING count
    )
    SELECT coalesce(sum(ins.count), 0) INTO added FROM ins;
    IF added > 0 THEN
        PERFORM pg_notify('annals_log.' || current_schema(), (head + added)::text);
    END IF;
    RETURN head + added;
END
$$;
