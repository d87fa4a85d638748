-- The read cache of PostgreSQL nodes (issue 18, src/store/postgres/cache.rs). Every statement
-- that deletes a session or an API token, or replaces an API token, moves the epoch of the
-- slots its rows fall in (the first byte of the token's digest, modulo 64), in its own
-- transaction: a node that reads the epochs after a revocation committed sees them moved and
-- stops trusting what it cached in those slots. Triggers rather than code in each write, so
-- that every writer counts: this version's nodes, the admin CLI, cascades from a removed user
-- or client, and hand-written SQL.
--
-- 64 rows, not one: revocations in different slots do not wait for each other's commit, and a
-- logout makes a node forget 1/64 of its cache, not all of it.
CREATE TABLE revocation_epochs (
    slot  SMALLINT PRIMARY KEY CHECK (slot BETWEEN 0 AND 63),
    epoch BIGINT NOT NULL
) WITH (fillfactor = 50);

INSERT INTO revocation_epochs (slot, epoch) SELECT s, 0 FROM generate_series(0, 63) AS s;

CREATE FUNCTION move_revocation_epochs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Row locks in ascending slot order, so that two revoking transactions never wait for
    -- each other in a cycle.
    PERFORM 1 FROM revocation_epochs
        WHERE slot IN (SELECT get_byte(token_hash, 0) % 64 FROM revoked)
        ORDER BY slot FOR UPDATE;
    UPDATE revocation_epochs SET epoch = epoch + 1
        WHERE slot IN (SELECT get_byte(token_hash, 0) % 64 FROM revoked);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_revoked AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS revoked
    FOR EACH STATEMENT EXECUTE FUNCTION move_revocation_epochs();

CREATE TRIGGER api_tokens_revoked AFTER DELETE ON api_tokens
    REFERENCING OLD TABLE AS revoked
    FOR EACH STATEMENT EXECUTE FUNCTION move_revocation_epochs();

-- An expired API token's row is reused for its successor (`issue_api_token`'s upsert).
CREATE TRIGGER api_tokens_replaced AFTER UPDATE ON api_tokens
    REFERENCING OLD TABLE AS revoked
    FOR EACH STATEMENT EXECUTE FUNCTION move_revocation_epochs();

-- A table emptied at once has no transition table: every slot moves.
CREATE FUNCTION move_all_revocation_epochs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM revocation_epochs ORDER BY slot FOR UPDATE;
    UPDATE revocation_epochs SET epoch = epoch + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_truncated AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION move_all_revocation_epochs();

CREATE TRIGGER api_tokens_truncated AFTER TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION move_all_revocation_epochs();
