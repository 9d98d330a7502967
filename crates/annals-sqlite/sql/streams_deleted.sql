-- streams.deleted_version: the version of the stream's deletion event (StreamDeleted) while it is
-- the stream's last event; NULL for a live stream. The writer refuses an append to a deleted
-- stream unless it starts with StreamRestored, and keeps this column as appends delete and
-- restore. Streams deleted before this column existed are found by their last event.
ALTER TABLE streams ADD COLUMN deleted_version INTEGER;
UPDATE streams SET deleted_version = version
WHERE EXISTS (SELECT 1 FROM events e
              WHERE e.stream_id = streams.stream_id AND e.version = streams.version
                AND e.event_type = 'StreamDeleted');
