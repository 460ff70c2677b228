-- The W3C trace context of the change that wrote an event, so the relay publishes it
-- in the trace of the request that caused it (NULL when that request was not traced).
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
