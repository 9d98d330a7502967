-- assign_positions(): gives global positions to every committed event row that has none, and returns the
-- head. Callers serialize on a transaction-level advisory lock (no transaction id, no WAL until
-- there is work); any caller may run it: each store's background sequencer after appends, and
-- readers at the head of the log (so they see appends that returned a moment ago).
--
-- Which rows: those of transactions at or above the last fence that are visible (committed) and
-- not yet in the log. Every transaction below the new fence (the oldest transaction still
-- running) has finished before the insert's snapshot, so its rows are all taken now.
--
-- Order: by (transaction, row), then each stream's slots are given to its rows in version order
-- (the stream's slots and its rows by version, zipped).
-- That keeps per-stream order even when a transaction that took its id early wrote v2 after a
-- younger transaction wrote v1: any snapshot that sees v2 sees v1, so both are in this batch or
-- v1 is in an earlier one.
CREATE FUNCTION assign_positions() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head bigint;
    old_fence xid8;
    new_fence xid8;
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
    -- "not yet in the log" one index probe per candidate, never a hash join over the whole log.
    -- So the plans are right whatever the statistics, and cached (no planning per run).
    SELECT h.fence INTO old_fence FROM log_head h;
    SELECT EXISTS (SELECT 1 FROM events e
                   LEFT JOIN LATERAL (SELECT 1 AS done FROM log l WHERE l.event_row = e.id LIMIT 1) l ON true
                   WHERE e.tx >= old_fence AND e.tx < upper AND l.done IS NULL)
      INTO pending;
    IF NOT pending THEN
        SELECT h.position INTO head FROM log_head h;
        RETURN head;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('annals.sequencer.' || current_schema()));
    SELECT h.position, h.fence INTO head, old_fence FROM log_head h;
    new_fence := pg_snapshot_xmin(pg_current_snapshot());
    WITH batch AS (
        SELECT e.id, e.stream_id, e.version, row_number() OVER (ORDER BY e.tx, e.id) AS slot
        FROM events e
        LEFT JOIN LATERAL (SELECT 1 AS done FROM log l WHERE l.event_row = e.id LIMIT 1) l ON true
        WHERE e.tx >= old_fence AND e.tx < upper AND l.done IS NULL
    ), per_stream AS (
        SELECT array_agg(b.slot ORDER BY b.slot) AS slots, array_agg(b.id ORDER BY b.version) AS ids
        FROM batch b GROUP BY b.stream_id
    )
    INSERT INTO log (position, event_row)
    SELECT head + u.slot, u.id FROM per_stream p, unnest(p.slots, p.ids) AS u(slot, id);
    GET DIAGNOSTICS added = ROW_COUNT;
    UPDATE log_head SET position = head + added, fence = new_fence;
    IF added > 0 THEN
        PERFORM pg_notify('annals_log.' || current_schema(), (head + added)::text);
    END IF;
    RETURN head + added;
END
$$;
