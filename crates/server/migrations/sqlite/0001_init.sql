-- Times are milliseconds since the Unix epoch; tokens are stored only as SHA-256 digests.

CREATE TABLE users (
    username      TEXT PRIMARY KEY NOT NULL,
    account       TEXT,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Keyed by the username as given, whether or not such a user exists, so that a lock reveals
-- nothing about which usernames are real.
CREATE TABLE login_failures (
    username     TEXT PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE oauth_clients (
    client_id   TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

-- One live token per (client, scope): the token itself is re-derived from seed + client secret.
CREATE TABLE api_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    seed       BLOB NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (client_id, scope)
);

CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY NOT NULL,
    -- What administrators see and revoke by; unrelated to the token.
    id           TEXT NOT NULL UNIQUE,
    username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);

CREATE INDEX sessions_by_username ON sessions (username);
CREATE INDEX sessions_by_last_used ON sessions (last_used_at);

-- Verifications in flight per username: counted with the failures so that parallel attempts
-- cannot run more than the threshold. Each expires by itself, so a crash leaks nothing for long.
CREATE TABLE login_attempts (
    attempt_id TEXT PRIMARY KEY NOT NULL,
    username   TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX login_attempts_by_username ON login_attempts (username);

-- Failed logins per client IP in a fixed window.
CREATE TABLE ip_failures (
    ip           TEXT PRIMARY KEY NOT NULL,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    time      INTEGER NOT NULL,
    event     TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    username  TEXT,
    client_id TEXT,
    ip        TEXT,
    detail    TEXT
);

CREATE INDEX audit_log_by_time ON audit_log (time);
CREATE INDEX audit_log_by_username ON audit_log (username, time);

-- Idempotent resets: written in the reset's own transaction, so a failed reset records nothing.
-- The answer is sealed under a key only the requesting client can derive, and erased when the
-- replay window ends; the row itself is kept a day to answer late repeats.
CREATE TABLE idempotency_records (
    username    TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    answer      BLOB,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (username, idem_key)
);

CREATE INDEX idempotency_records_by_created ON idempotency_records (created_at);
