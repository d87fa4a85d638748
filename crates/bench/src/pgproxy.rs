//! A TCP relay on 127.0.0.1 between a server and PostgreSQL that counts the statements and the
//! round trips the server sends, from the protocol's messages: the count `pg_stat_statements`
//! would give, without preloading it (which needs a restart of the shared PostgreSQL).
//!
//! The relay reads the frontend's messages only (the answers pass through unread), so the
//! connection must not be encrypted: the URL it gives out says `sslmode=disable`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Messages the servers sent so far.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Messages {
    /// `Query` (simple protocol: `BEGIN`, `COMMIT`…) plus `Execute` (a prepared statement run).
    pub statements: u64,
    /// `Query` plus `Sync`: each waits for PostgreSQL's answer.
    pub round_trips: u64,
    /// `Parse`: statements prepared (once per connection with sqlx's statement cache).
    pub parses: u64,
}

impl std::ops::Sub for Messages {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            statements: self.statements - o.statements,
            round_trips: self.round_trips - o.round_trips,
            parses: self.parses - o.parses,
        }
    }
}

#[derive(Default)]
struct Counts {
    query: AtomicU64,
    execute: AtomicU64,
    sync: AtomicU64,
    parse: AtomicU64,
}

pub struct Relay {
    counts: Arc<Counts>,
    /// The database URL with the relay in place of PostgreSQL's address.
    pub url: String,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to the PostgreSQL of `url` (`postgres://[user@]host:port/db[?…]`).
    pub async fn start(url: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = url.split_once("://").context("database URL without ://")?;
        let (authority, path) = rest.split_once('/').context("database URL without /DB")?;
        let (user, target) = match authority.rsplit_once('@') {
            Some((user, target)) => (format!("{user}@"), target.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let target = if target.contains(':') {
            target
        } else {
            format!("{target}:5432")
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("{scheme}://{user}{local}/{path}{separator}sslmode=disable");
        let counts = Arc::new(Counts::default());
        let accept = {
            let counts = counts.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (counts, target) = (counts.clone(), target.clone());
                    tokio::spawn(async move {
                        if let Ok(upstream) = TcpStream::connect(&target).await {
                            let _ = relay(client, upstream, counts).await;
                        }
                    });
                }
            })
        };
        Ok(Self {
            counts,
            url,
            accept,
        })
    }

    pub fn messages(&self) -> Messages {
        let c = &self.counts;
        let (q, e, s, p) = (
            c.query.load(Ordering::Relaxed),
            c.execute.load(Ordering::Relaxed),
            c.sync.load(Ordering::Relaxed),
            c.parse.load(Ordering::Relaxed),
        );
        Messages {
            statements: q + e,
            round_trips: q + s,
            parses: p,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, upstream: TcpStream, counts: Arc<Counts>) -> anyhow::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut parser = Parser::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = client_read.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        parser.feed(&buf[..n], &counts);
        up_write.write_all(&buf[..n]).await?;
    }
    let _ = up_write.shutdown().await;
    let _ = answers.await;
    Ok(())
}

/// The frontend's message stream: untyped messages (`SSLRequest`, `StartupMessage`: length,
/// then a code) until the startup message, then typed ones (a byte, then the length including
/// itself), as in PostgreSQL's protocol, chapter "Message Formats".
#[derive(Default)]
struct Parser {
    started: bool,
    header: Vec<u8>,
    skip: usize,
}

const PROTOCOL_3: u32 = 196_608;

impl Parser {
    fn feed(&mut self, mut bytes: &[u8], counts: &Counts) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            // Untyped: length (4) and code (4); typed: type (1) and length (4).
            let want = if self.started { 5 } else { 8 };
            let n = (want - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < want {
                continue;
            }
            let word = |i: usize| {
                u32::from_be_bytes([
                    self.header[i],
                    self.header[i + 1],
                    self.header[i + 2],
                    self.header[i + 3],
                ]) as usize
            };
            if self.started {
                let counter = match self.header[0] {
                    b'Q' => Some(&counts.query),
                    b'E' => Some(&counts.execute),
                    b'S' => Some(&counts.sync),
                    b'P' => Some(&counts.parse),
                    _ => None,
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                self.skip = word(1).saturating_sub(4);
            } else {
                if word(4) == PROTOCOL_3 as usize {
                    self.started = true;
                }
                self.skip = word(0).saturating_sub(8);
            }
            self.header.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn counts_messages_split_anywhere() {
        let mut stream = Vec::new();
        let startup_body = b"user\0postgres\0\0";
        stream.extend_from_slice(&u32::try_from(8 + startup_body.len()).unwrap().to_be_bytes());
        stream.extend_from_slice(&PROTOCOL_3.to_be_bytes());
        stream.extend_from_slice(startup_body);
        stream.extend(typed(b'p', b"secret\0"));
        stream.extend(typed(b'Q', b"BEGIN\0"));
        stream.extend(typed(b'P', b"\0SELECT 1\0\0\0"));
        stream.extend(typed(b'B', b"\0\0\0\0\0\0\0\0"));
        stream.extend(typed(b'E', b"\0\0\0\0\0"));
        stream.extend(typed(b'S', b""));
        stream.extend(typed(b'Q', b"COMMIT\0"));
        for chunk in [1, 2, 3, 7, 1000] {
            let (counts, mut parser) = (Counts::default(), Parser::default());
            for piece in stream.chunks(chunk) {
                parser.feed(piece, &counts);
            }
            assert_eq!(counts.query.load(Ordering::Relaxed), 2, "chunks of {chunk}");
            assert_eq!(counts.execute.load(Ordering::Relaxed), 1);
            assert_eq!(counts.sync.load(Ordering::Relaxed), 1);
            assert_eq!(counts.parse.load(Ordering::Relaxed), 1);
        }
    }
}
