//! The SDK against the real server (end to end) and against mocks (faults a real server will
//! not produce on demand).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod against_server;
mod blocking;
mod examples;
mod faults;
mod lost_answer;
mod middleware;
mod spans;
mod support;
