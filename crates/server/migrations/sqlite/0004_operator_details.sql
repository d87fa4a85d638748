-- What operators asked to see (issue 16): the address a session was started from, shown by
-- `session list`, and the request id of each audit line, which the client and the access log
-- also carry. Both nullable and additive: nodes of the previous version that are running keep
-- working beside upgraded ones (their rows have neither); one that restarts refuses the
-- database, whose migrations it does not know (sqlx), so upgrade every node before restarts.
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
