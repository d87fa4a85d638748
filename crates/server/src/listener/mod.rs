//! The accept loop: every connection is bounded in number, in time and in buffered bytes.
//!
//! Why not `axum::serve`: it has no connection cap and no timeouts, so a client that sends
//! nothing, or half a request, holds a socket and up to ~400 KB of hyper's buffer for ever.
//! Hyper's own header timeout starts whenever a connection waits for a request head, so it
//! cannot tell a silent keep-alive connection from a slow header; the deadlines here are kept
//! per connection state instead (see `deadlines.rs`).
//!
//! At the cap, [`HEALTH_RESERVE`] more connections are accepted for the health endpoints
//! only: everything else on them is answered 503 at once and the connection closed. When the
//! reserve is full too, a new connection takes the place of the reserve connection that has
//! waited longest without a request in flight, so that a flood of silent connections cannot
//! keep a load balancer's probe out; a new connection is closed unread only when all of the
//! reserve is busy answering.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::telemetry;

mod deadlines;

use deadlines::{Deadlines, InFlight, Timed};

/// Connections accepted beyond `max_connections` that may only reach `/healthz` and `/readyz`.
pub const HEALTH_RESERVE: usize = 16;
/// Hyper refuses read buffers smaller than this.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// How long and how much a connection may hold the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a connection's first byte of a request (or from its accept) to the end of the
    /// request's headers; also bounds a TLS handshake.
    pub header_read_timeout: Duration,
    /// To receive a whole request body once a handler starts reading it.
    pub body_read_timeout: Duration,
    /// How long a connection may sit silent between requests.
    pub keep_alive_timeout: Duration,
    /// Bytes a connection may buffer before its headers are complete (431 beyond).
    pub max_header_bytes: usize,
    /// Connections served at once (plus [`HEALTH_RESERVE`] for health checks).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
        }
    }
}

/// Marks a request that came in on a reserve connection (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct OverCapacity;

/// Serves `app` on `listener` until `stop_accepting` completes, then lets open connections
/// finish their requests for at most `deadline`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    stop_accepting: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> io::Result<()> {
    let regular = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Reserve::default());
    let graceful = GracefulShutdown::new();
    let mut stop_accepting = std::pin::pin!(stop_accepting);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let deadlines = Arc::new(Deadlines::new(limits));
        let (permit, slot) = match regular.clone().try_acquire_owned() {
            Ok(permit) => (Some(permit), None),
            Err(_) => match reserve.take(&deadlines) {
                Some(slot) => (None, Some(slot)),
                None => {
                    metrics::counter!(telemetry::HTTP_CONNECTIONS_REFUSED).increment(1);
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            limits,
            peer,
            over_capacity: slot.is_some(),
            deadlines,
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        let reserve = reserve.clone();
        tokio::spawn(async move {
            metrics::gauge!(telemetry::HTTP_CONNECTIONS_OPEN).increment(1.0);
            let work = async move {
                match tls {
                    None => conn.serve(stream).await,
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                            Ok(Ok(stream)) => conn.serve(stream).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => timed_out(),
                        }
                    }
                }
            };
            match &slot {
                None => work.await,
                Some(slot) => tokio::select! {
                    () = work => {}
                    () = slot.evicted.notified() => {
                        metrics::counter!(telemetry::HTTP_CONNECTIONS_EVICTED).increment(1);
                    }
                },
            }
            if let Some(slot) = slot {
                reserve.give_back(slot.id);
            }
            metrics::gauge!(telemetry::HTTP_CONNECTIONS_OPEN).decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(()),
        () = tokio::time::sleep(deadline) => {
            tracing::warn!(?deadline, "in-flight requests did not finish in time; stopping");
            Ok(())
        }
    }
}

/// Out of file descriptors (or memory) is not a reason to stop serving: wait and try again,
/// the open connections' timeouts free some.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    metrics::counter!(telemetry::HTTP_ACCEPT_ERRORS).increment(1);
    tracing::debug!(error = %e, "accept failed; retrying in 50 ms");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The connections beyond the cap, oldest first.
#[derive(Default)]
struct Reserve {
    slots: Mutex<std::collections::VecDeque<Arc<Slot>>>,
    next_id: std::sync::atomic::AtomicU64,
}

struct Slot {
    id: u64,
    deadlines: Arc<Deadlines>,
    evicted: tokio::sync::Notify,
}

impl Reserve {
    /// A place in the reserve, if need be the place of the longest-waiting idle connection.
    fn take(&self, deadlines: &Arc<Deadlines>) -> Option<Arc<Slot>> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slots.len() >= HEALTH_RESERVE {
            let idle = slots.iter().position(|s| s.deadlines.is_idle())?;
            if let Some(old) = slots.remove(idle) {
                old.evicted.notify_one();
            }
        }
        let slot = Arc::new(Slot {
            id: self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            deadlines: deadlines.clone(),
            evicted: tokio::sync::Notify::new(),
        });
        slots.push_back(slot.clone());
        Some(slot)
    }

    fn give_back(&self, id: u64) {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|s| s.id != id);
    }
}

fn timed_out() {
    metrics::counter!(telemetry::HTTP_CONNECTIONS_TIMED_OUT).increment(1);
}

struct Connection {
    app: Router,
    limits: ConnectionLimits,
    peer: SocketAddr,
    over_capacity: bool,
    deadlines: Arc<Deadlines>,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let deadlines = self.deadlines;
        let io = TokioIo::new(Timed::new(io, deadlines.clone()));
        let (app, peer, over_capacity) = (self.app, self.peer, self.over_capacity);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = InFlight::begin(deadlines.clone());
            request.extensions_mut().insert(ConnectInfo(peer));
            if over_capacity {
                request.extensions_mut().insert(OverCapacity);
            }
            let mut app = app.clone();
            async move {
                let response = tower::Service::call(&mut app, request.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // Ours, per state, in `Timed`.
            .header_read_timeout(None)
            .max_buf_size(self.limits.max_header_bytes.max(MIN_HEADER_BYTES))
            .keep_alive(!over_capacity);
        let connection = builder.serve_connection(io, service);
        if let Err(e) = self.watcher.watch(connection).await {
            if e.is_timeout() || is_our_timeout(&e) {
                timed_out();
                tracing::debug!(%peer, "connection closed: timed out");
            } else {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
        }
    }
}

fn is_our_timeout(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
}
