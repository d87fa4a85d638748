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
    username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);

CREATE INDEX sessions_by_username ON sessions (username);
CREATE INDEX sessions_by_last_used ON sessions (last_used_at);
