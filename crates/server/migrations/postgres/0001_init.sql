-- The same model as migrations/sqlite: times are milliseconds since the Unix epoch, tokens are
-- stored only as SHA-256 digests. sqlx applies this under a PostgreSQL advisory lock, so nodes
-- starting together do not race.

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    account       TEXT,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE login_failures (
    username     TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE oauth_clients (
    client_id   TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash BYTEA PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    seed       BYTEA NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (client_id, scope)
);

CREATE TABLE sessions (
    token_hash   BYTEA PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);

CREATE INDEX sessions_by_username ON sessions (username);
CREATE INDEX sessions_by_last_used ON sessions (last_used_at);

CREATE TABLE login_attempts (
    attempt_id TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX login_attempts_by_username ON login_attempts (username);

CREATE TABLE ip_failures (
    ip           TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    time      BIGINT NOT NULL,
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
    fingerprint BYTEA NOT NULL,
    answer      BYTEA,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (username, idem_key)
);

CREATE INDEX idempotency_records_by_created ON idempotency_records (created_at);
