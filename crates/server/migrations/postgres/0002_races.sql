-- The time of the latest success (or admin unlock): a failure of a request that arrived before
-- it does not count, so parallel checks around a success cannot lock the user.
ALTER TABLE login_failures ADD COLUMN forgiven_before BIGINT NOT NULL DEFAULT 0;

-- A reservation also holds the client address of a login, so that verifications in flight
-- count against the per-address limit as they count against the per-username one.
ALTER TABLE login_attempts ADD COLUMN ip TEXT;
CREATE INDEX login_attempts_by_ip ON login_attempts (ip);

-- Failed logins per client address as a log, one row per failure, so the limit holds within
-- any window's length (a sliding window); admission keeps it to at most the limit per address.
DROP TABLE ip_failures;
CREATE TABLE ip_failure_log (
    ip TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX ip_failure_log_by_ip ON ip_failure_log (ip, at);
