-- What operators asked to see (issue 16): the address a session was started from, shown by
-- `session list`, and the request id of each audit line, which the client and the access log
-- also carry. Both nullable and additive: nodes of the previous version keep working beside
-- upgraded ones (their rows have neither).
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
