//! Tests of `m2m-session-client`, kept out of the SDK crate so that its dev-dependencies do not
//! include the server: `tests/it/` drives the SDK against the real server in-process
//! (`against_server`, `examples`, `lost_answer`, `spans`) and against mock servers for faults
//! a real server will not produce on demand (`faults`).
//!
//! `cargo test -p m2m-session-client-it`.
