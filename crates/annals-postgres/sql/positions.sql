-- assign_positions(): gives global positions to every committed event row that has none, and returns the
-- head. Callers serialize on log_head's row lock; any caller may run it (appenders do, right
-- after their commit; waiting readers do as a sweeper for appenders that died before doing so).
--
-- Which rows: those of transactions at or above the last fence that are visible (committed) and
-- not yet in the log. Every transaction below the new fence (the oldest transaction still
-- running) has finished before the insert's snapshot, so its rows are all taken now.
--
-- Order: by (transaction, row), then each stream's slots are given to its rows in version order.
-- That keeps per-stream order even when a transaction that took its id early wrote v2 after a
-- younger transaction wrote v1: any snapshot that sees v2 sees v1, so both are in this batch or
-- v1 is in an earlier one.
CREATE FUNCTION assign_positions() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head bigint;
    old_fence xid8;
    new_fence xid8;
    added bigint;
BEGIN
    SELECT h.fence INTO old_fence FROM log_head h;
    IF NOT EXISTS (SELECT 1 FROM events e WHERE e.tx >= old_fence
                   AND NOT EXISTS (SELECT 1 FROM log l WHERE l.event_row = e.id)) THEN
        SELECT h.position INTO head FROM log_head h;
        RETURN head;
    END IF;
    SELECT h.position, h.fence INTO head, old_fence FROM log_head h FOR UPDATE;
    new_fence := pg_snapshot_xmin(pg_current_snapshot());
    WITH batch AS (
        SELECT e.id, e.stream_id, e.version, row_number() OVER (ORDER BY e.tx, e.id) AS slot
        FROM events e
        WHERE e.tx >= old_fence AND NOT EXISTS (SELECT 1 FROM log l WHERE l.event_row = e.id)
    ), slots AS (
        SELECT b.stream_id, b.slot, row_number() OVER (PARTITION BY b.stream_id ORDER BY b.slot) AS k FROM batch b
    ), rows_in_order AS (
        SELECT b.id, b.stream_id, row_number() OVER (PARTITION BY b.stream_id ORDER BY b.version) AS k FROM batch b
    )
    INSERT INTO log (position, event_row)
    SELECT head + s.slot, r.id FROM slots s JOIN rows_in_order r ON r.stream_id = s.stream_id AND r.k = s.k;
    GET DIAGNOSTICS added = ROW_COUNT;
    UPDATE log_head SET position = head + added, fence = new_fence;
    IF added > 0 THEN
        PERFORM pg_notify('annals_log.' || current_schema(), (head + added)::text);
    END IF;
    RETURN head + added;
END
$$;

-- event_positions(event ids): the global positions of stored events, in the order asked (NULL for an id
-- not stored), sequencing first if one of them has none yet. An append calls it in the same round
-- trip, right after its own transaction.
CREATE FUNCTION event_positions(ids uuid[]) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    found bigint[];
    missing boolean;
BEGIN
    SELECT array_agg(l.position ORDER BY a.ord), bool_or(e.id IS NOT NULL AND l.position IS NULL)
      INTO found, missing
      FROM unnest(ids) WITH ORDINALITY AS a(event_id, ord)
      LEFT JOIN events e ON e.event_id = a.event_id
      LEFT JOIN log l ON l.event_row = e.id;
    IF missing THEN
        PERFORM assign_positions();
        SELECT array_agg(l.position ORDER BY a.ord)
          INTO found
          FROM unnest(ids) WITH ORDINALITY AS a(event_id, ord)
          LEFT JOIN events e ON e.event_id = a.event_id
          LEFT JOIN log l ON l.event_row = e.id;
    END IF;
    RETURN found;
END
$$;
