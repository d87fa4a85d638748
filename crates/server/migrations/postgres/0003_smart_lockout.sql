-- Smart lockout (domain/lockout.rs). A username's counters are kept per bucket: '' is shared by
-- every source; with familiar sources on, a network the user logged in from recently has its
-- own, so a guesser elsewhere cannot lock it.
ALTER TABLE login_failures ADD COLUMN bucket TEXT NOT NULL DEFAULT '';
ALTER TABLE login_failures DROP CONSTRAINT login_failures_pkey;
ALTER TABLE login_failures ADD PRIMARY KEY (username, bucket);

-- A reservation counts against its bucket's threshold.
ALTER TABLE login_attempts ADD COLUMN bucket TEXT NOT NULL DEFAULT '';
DROP INDEX login_attempts_by_username;
CREATE INDEX login_attempts_by_username ON login_attempts (username, bucket);

-- The wrong passwords counted in a bucket, as keyed digests (crypto/attempt_digest.rs): the
-- same one again does not count. Forgotten whenever the count starts again.
CREATE TABLE failed_passwords (
    username TEXT NOT NULL,
    bucket   TEXT NOT NULL,
    digest   BYTEA NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (username, bucket, digest)
);

-- The password the last reset replaced, as the digest a login presenting it will have, until
-- the grace period ends: workers still retrying it do not count towards the lock.
CREATE TABLE previous_passwords (
    username TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
    digest   BYTEA NOT NULL,
    until    BIGINT NOT NULL
);

-- Networks a user logged in from, and when last: with familiar sources on, their failures
-- count in their own bucket.
CREATE TABLE familiar_sources (
    username        TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    network         TEXT NOT NULL,
    last_success_at BIGINT NOT NULL,
    PRIMARY KEY (username, network)
);

-- Wrong passwords that did not count (repeated, replaced) are still logged against the
-- address, apart: each cost a verification, and an address gets ten times its limit of them.
ALTER TABLE ip_failure_log ADD COLUMN counted BOOLEAN NOT NULL DEFAULT TRUE;
