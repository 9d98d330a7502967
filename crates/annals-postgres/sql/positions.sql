-- assign_positions(): gives global positions to every committed event row that has none, and returns the
-- head. Callers serialize on a transaction-level advisory lock (no transaction id, no WAL until
-- there is work); any caller may run it: each store's background sequencer after appends, and
-- readers at the head of the log (so they see appends that returned a moment ago).
--
-- Which rows: those of the transactions the last run did not see. Each run stores the snapshot
-- its own insert ran with (`log_head.seen`); a transaction visible in it had every row taken by
-- that run, so the candidates now are the transactions it did not see: those running then (its
-- xip list) and those from its xmax on — two index probes on events.tx, however old the oldest
-- running transaction is. (Until migration 11 the candidates were every transaction from the
-- oldest one then running, the fence, minus the groups already in the log: one transaction held
-- open anywhere in the cluster made every run rescan every event written since it began. A
-- schema whose head has no snapshot yet takes that path once, `legacy`.)
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
SET jit = off AS $$
DECLARE
    head bigint;
    snap pg_snapshot;
    since xid8;
    running xid8[];
    legacy boolean;
    added bigint;
    pending boolean;
    -- Not a bound at all (no transaction id reaches it): it only makes the range on events.tx
    -- two-sided, see below. A real upper bound taken before the insert's snapshot would let a
    -- younger transaction's v1 miss a batch that takes an older transaction's v2.
    upper xid8 := '18446744073709551615';
BEGIN
    -- The range on events.tx is written two-sided because the planner, without statistics on a
    -- young table (or with a parameter, in a cached plan), guesses a third of the table for an
    -- open range and would scan all of it, but 0.5% for a closed one; LATERAL … LIMIT 1 makes
    -- "not yet in the log" (legacy only) one index probe per candidate, never a hash join over
    -- the whole log. So the plans are right whatever the statistics, and cached (no planning per
    -- run).
    SELECT h.seen, coalesce(pg_snapshot_xmax(h.seen), h.fence), h.seen IS NULL INTO snap, since, legacy
    FROM log_head h;
    running := ARRAY(SELECT pg_snapshot_xip(snap));
    pending := NOT check_first;
    IF check_first THEN
    SELECT EXISTS (
        SELECT 1 FROM (SELECT e.stream_id, min(e.version) AS first_version
                       FROM events e WHERE (e.tx >= since AND e.tx < upper) OR e.tx = ANY (running)
                       GROUP BY e.tx, e.stream_id) p
        LEFT JOIN LATERAL (SELECT 1 AS done FROM log l
                           WHERE legacy AND l.stream_id = p.stream_id AND l.first_version = p.first_version
                           LIMIT 1) d ON true
        WHERE d.done IS NULL)
      INTO pending;
    END IF;
    IF NOT pending THEN
        SELECT h.position INTO head FROM log_head h;
        RETURN head;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('annals.sequencer.' || current_schema()));
    SELECT h.position, h.seen, coalesce(pg_snapshot_xmax(h.seen), h.fence), h.seen IS NULL
    INTO head, snap, since, legacy FROM log_head h;
    running := ARRAY(SELECT pg_snapshot_xip(snap));
    WITH fresh AS (
        -- Each committed transaction's events of one stream (consecutive versions) that the last
        -- run did not see.
        SELECT p.tx, p.stream_id, p.first_version, p.n
        FROM (SELECT e.tx, e.stream_id, min(e.version) AS first_version, count(*)::int AS n
              FROM events e WHERE (e.tx >= since AND e.tx < upper) OR e.tx = ANY (running)
              GROUP BY e.tx, e.stream_id) p
        LEFT JOIN LATERAL (SELECT 1 AS done FROM log l
                           WHERE legacy AND l.stream_id = p.stream_id AND l.first_version = p.first_version
                           LIMIT 1) d ON true
        WHERE d.done IS NULL
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
        INSERT INTO log (first_position, stream_id, first_version, count)
        SELECT head + sum(pl.n) OVER (ORDER BY pl.slot) - pl.n + 1, pl.stream_id, pl.first_version, pl.n
        FROM placed pl
        RETURNING count
    )
    -- This statement's own snapshot: every transaction it sees has had all its rows taken now.
    SELECT coalesce(sum(ins.count), 0), pg_current_snapshot() INTO added, snap FROM ins;
    UPDATE log_head SET position = head + added, seen = snap, fence = pg_snapshot_xmin(snap);
    IF added > 0 THEN
        PERFORM pg_notify('annals_log.' || current_schema(), (head + added)::text);
    END IF;
    RETURN head + added;
END
$$;
