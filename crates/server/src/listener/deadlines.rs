//! Per-connection deadlines: what a connection waiting for bytes must have received by when,
//! enforced on its reads. Kept per connection state because hyper's own header timeout cannot
//! tell a silent keep-alive connection from a slow header.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tokio::time::{Instant, Sleep};

use super::ConnectionLimits;

/// When a connection that waits for bytes must have received them.
///
/// A fresh connection gets the header timeout for its first request; between requests the
/// keep-alive timeout applies until a first byte arrives, then the header timeout from that
/// byte. While a request is being handled there is no deadline here: the handler bounds its
/// body read with the body timeout, and its own work is the server's, not the client's.
pub(super) struct Deadlines {
    limits: ConnectionLimits,
    state: Mutex<State>,
}

struct State {
    /// The read that found no deadline to wait for (a request was in flight): woken when
    /// the request ends, so that it starts waiting with one.
    parked_read: Option<std::task::Waker>,
    in_flight: usize,
    served_one: bool,
    waiting_since: Instant,
    head_started: Option<Instant>,
}

impl Deadlines {
    /// Whether no request is being handled: a reserve connection that may be evicted.
    pub(super) fn is_idle(&self) -> bool {
        self.lock().in_flight == 0
    }

    pub(super) fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                parked_read: None,
                in_flight: 0,
                served_one: false,
                waiting_since: Instant::now(),
                head_started: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The deadline of a read that would wait now; without one, `waker` is woken when a
    /// deadline applies again.
    fn current(&self, waker: &std::task::Waker) -> Option<Instant> {
        let mut state = self.lock();
        if state.in_flight > 0 {
            state.parked_read = Some(waker.clone());
            None
        } else if let Some(started) = state.head_started {
            Some(started + self.limits.header_read_timeout)
        } else if state.served_one {
            Some(state.waiting_since + self.limits.keep_alive_timeout)
        } else {
            Some(state.waiting_since + self.limits.header_read_timeout)
        }
    }

    fn bytes_arrived(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
        }
    }
}

/// A request being handled on the connection; dropping it starts the wait for the next one.
pub(super) struct InFlight(Arc<Deadlines>);

impl InFlight {
    pub(super) fn begin(deadlines: Arc<Deadlines>) -> Self {
        {
            let mut state = deadlines.lock();
            state.in_flight += 1;
            state.served_one = true;
            state.head_started = None;
        }
        Self(deadlines)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.waiting_since = Instant::now();
            state.head_started = None;
            if let Some(read) = state.parked_read.take() {
                read.wake();
            }
        }
    }
}

/// The socket, failing a read with `TimedOut` once the connection's deadline has passed.
pub(super) struct Timed<I> {
    io: I,
    deadlines: Arc<Deadlines>,
    sleep: Pin<Box<Sleep>>,
}

impl<I> Timed<I> {
    pub(super) fn new(io: I, deadlines: Arc<Deadlines>) -> Self {
        Self {
            io,
            deadlines,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Timed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.deadlines.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = self.deadlines.current(cx.waker()) else {
                    return Poll::Pending;
                };
                if self.sleep.deadline() != deadline {
                    self.sleep.as_mut().reset(deadline);
                }
                match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing in time",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Timed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
