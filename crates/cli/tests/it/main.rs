//! The real `m2m-session` binary: admin commands, `serve`, logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_commands;
mod binary;
mod client_commands;
mod crash;
mod multi_node;
mod secrets;
mod serve;
mod smart_lockout;
