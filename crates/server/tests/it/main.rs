//! Integration tests of the server crate: one binary, one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod connections;
mod domain_rules;
mod http_contract;
mod idempotency;
mod injected;
mod lockout_races;
mod logs;
mod metrics;
mod oauth;
mod openapi;
mod opening;
mod outage;
mod persistence;
mod pg_read_cache;
mod read_cache;
mod request_ids;
mod security;
mod simulator;
mod smart_lockout;
mod sqlite_batches;
mod support;
mod tls;
mod usernames;
