-- parked.message: the parked event itself (RecordedEvent::to_json), so a consumer whose store
-- does not hold the event (a broker consumer) can try it again when an operator asks.
ALTER TABLE parked ADD COLUMN message TEXT;
