//! The real `m2m-session` binary: admin commands, `serve`, logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_commands;
mod admin_tasks;
mod binary;
mod client_commands;
mod crash;
mod first_day;
mod multi_node;
mod pgbouncer;
mod secrets;
mod serve;
mod smart_lockout;
mod tls_client;
