//! The m2m-session server: a ThingSpace-compatible Connectivity Management session service.
//!
//! One request crosses four rooms: [`http`] (routes and extractors) → [`domain`] (rules, with
//! `now` passed in) → [`store`] (one trait, one module per database) and [`crypto`] (argon2id,
//! tokens, digests). [`Server`] wires them to a listener.

#![warn(missing_docs)]

pub mod clock;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod listener;
mod server;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod tls;

/// The commit this build was made from (`build.rs`), or `unknown`.
pub const BUILD_COMMIT: &str = env!("M2M_SESSION_COMMIT");

pub use server::{Server, ServerConfig, StartError, open_admin, shutdown_signal};
