use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::crypto::{Argon2Settings, CryptoError, PasswordHasher};
use crate::domain::{Admin, Policy, SessionService};
use crate::http::{AppState, DEFAULT_BODY_LIMIT, metrics_router, router};
use crate::listener::ConnectionLimits;
use crate::store::{self, Store, StoreError, StoreSettings};

/// How often sessions idle past the timeout are deleted (expiry never waits for this).
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the offset to the database's clock is measured again.
const CLOCK_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Everything `serve` needs, already merged from flags, environment and file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the session API is served.
    pub listen: SocketAddr,
    /// Where `/metrics` is served instead of on `listen` (e.g. a port only the scraper reaches).
    pub metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS on `listen` with these files.
    pub tls: Option<crate::tls::TlsFiles>,
    /// The database URL (`sqlite://...` or `postgres://...`); never logged unredacted.
    pub database: String,
    /// Pool sizes and waits.
    pub store: StoreSettings,
    /// Timeouts, limits and lockout rules.
    pub policy: Policy,
    /// Cost of password hashes made from now on (older hashes are upgraded at login).
    pub argon2: Argon2Settings,
    /// Concurrent argon2 computations; 0 means one per CPU.
    pub hash_workers: usize,
    /// Hashes that may wait for a worker before logins are shed with 503; 0 = 16 per worker.
    pub hash_queue: usize,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Timeouts, buffer bound and cap of client connections.
    pub connections: ConnectionLimits,
    /// Proxies whose `X-Forwarded-For` names the client IP.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// After the shutdown signal, how long `/readyz` answers 503 (so load balancers stop
    /// sending) while requests are still served.
    pub shutdown_delay: Duration,
    /// Then, how long in-flight requests may take before the server stops anyway.
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            tls: None,
            database: "sqlite://m2m-session.db".to_owned(),
            store: StoreSettings::default(),
            policy: Policy::default(),
            argon2: Argon2Settings::default(),
            hash_workers: 0,
            hash_queue: 0,
            body_limit: DEFAULT_BODY_LIMIT,
            connections: ConnectionLimits::default(),
            trusted_proxies: Vec::new(),
            shutdown_delay: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

/// Why the server did not start; each names the part that failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("cannot open database: {0}")]
    Store(#[from] StoreError),
    /// The argon2 settings were refused.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason; part of the message, so not also its source.
        error: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A bound, ready server: the store is open and migrated, the port is taken.
pub struct Server {
    listener: TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    metrics_listener: Option<TcpListener>,
    service: SessionService,
    store: Arc<dyn Store>,
    clock: Clock,
    body_limit: usize,
    connections: ConnectionLimits,
    trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
}

impl Server {
    /// Binds the listener and opens the store; nothing is served until [`Server::run`].
    pub async fn bind(config: &ServerConfig) -> Result<Self, StartError> {
        // Recording starts with the first server of the process, not at the first scrape.
        crate::telemetry::handle();
        // What can fail without the database comes first: a server that cannot start must not
        // have created one.
        let hasher =
            PasswordHasher::with_queue(config.argon2, config.hash_workers, config.hash_queue)?;
        let tls = config.tls.as_ref().map(crate::tls::load).transpose()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|error| StartError::Bind {
                    addr: config.listen,
                    error,
                })?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|error| StartError::Bind { addr, error })?,
            ),
            None => None,
        };
        let store = store::open(&config.database, &config.store).await?;
        let clock = Clock::default();
        let offset = clock.sync(store.as_ref()).await?;
        if offset.abs() > 1_000 {
            tracing::warn!(
                offset_ms = offset,
                "this node's clock differs from the database's"
            );
        }
        let service = SessionService::new(store.clone(), hasher, config.policy.clone())
            .with_time(Arc::new(clock.clone()));
        let server = Self {
            listener,
            tls,
            metrics_listener,
            service,
            store,
            clock,
            body_limit: config.body_limit,
            connections: config.connections,
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            shutdown_delay: config.shutdown_delay,
            shutdown_timeout: config.shutdown_timeout,
        };
        // The simulator creates clients and users on first use: there is nothing to add.
        if !config.policy.simulator {
            server.hint_when_empty().await?;
        }
        Ok(server)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The domain service this server answers with (tests reach the store through it).
    pub fn service(&self) -> &SessionService {
        &self.service
    }

    /// Serves until `shutdown` completes, then drains: `/readyz` answers 503 at once, the
    /// listener keeps serving for the shutdown delay (load balancers notice and stop sending),
    /// then stops accepting; in-flight requests get the shutdown timeout to finish; last, the
    /// store is closed (for SQLite, the WAL is checkpointed).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!("listening on {addr}");
        let purge = tokio::spawn(purge_loop(self.service.clone(), self.clock.clone()));
        let sync = tokio::spawn(clock_sync_loop(self.store.clone(), self.clock.clone()));
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = AppState {
            service: Arc::new(self.service.clone()),
            clock: self.clock.clone(),
            body_limit: self.body_limit,
            body_read_timeout: self.connections.body_read_timeout,
            trusted_proxies: self.trusted_proxies.clone(),
            draining: draining.clone(),
            serves_metrics: self.metrics_listener.is_none(),
        };
        // Metrics stay up until the main listener has drained: a scrape may watch the drain.
        let limits = self.connections;
        let metrics = match self.metrics_listener {
            Some(listener) => {
                tracing::info!("metrics on {}", listener.local_addr()?);
                let app = metrics_router(state.clone());
                let forever = std::future::pending::<()>();
                Some(tokio::spawn(crate::listener::serve(
                    listener,
                    None,
                    app,
                    limits,
                    forever,
                    Duration::ZERO,
                )))
            }
            None => None,
        };
        let app = router(state);
        let delay = self.shutdown_delay;
        let stop_accepting = async move {
            shutdown.await;
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(?delay, "draining: /readyz now answers 503");
            tokio::time::sleep(delay).await;
            tracing::info!("no longer accepting connections");
        };
        let tls = self
            .tls
            .map(|tls| tokio_rustls::TlsAcceptor::from(tls.get_inner()));
        let result = crate::listener::serve(
            self.listener,
            tls,
            app,
            limits,
            stop_accepting,
            self.shutdown_timeout,
        )
        .await;
        purge.abort();
        sync.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        self.store.close().await;
        tracing::info!("stopped");
        result
    }

    /// An empty database is not filled silently: say how to add the first client and user.
    async fn hint_when_empty(&self) -> Result<(), StoreError> {
        if self.store.list_clients().await?.is_empty() || self.store.list_users().await?.is_empty()
        {
            tracing::info!(
                "no OAuth client or no user yet: add them with `m2m-session client add CLIENT_ID` \
                 and `m2m-session user add USERNAME` (same --database)"
            );
        }
        Ok(())
    }
}

/// An admin façade over the same store a server would use. Only `create` makes a SQLite file
/// that is not there yet.
pub async fn open_admin(
    database: &str,
    argon2: Argon2Settings,
    create: bool,
) -> Result<Admin, StartError> {
    let settings = StoreSettings {
        max_connections: 2,
        create_if_missing: create,
        ..StoreSettings::default()
    };
    let store = store::open(database, &settings).await?;
    let hasher = PasswordHasher::new(argon2, 1)?;
    Ok(Admin::new(store, hasher))
}

async fn purge_loop(service: SessionService, clock: Clock) {
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    loop {
        tick.tick().await;
        match service.purge(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                purged = n,
                "idle sessions and stale idempotency records purged"
            ),
            Err(e) => tracing::warn!(error = %e, "purging idle sessions failed"),
        }
    }
}

async fn clock_sync_loop(store: Arc<dyn Store>, clock: Clock) {
    let mut tick = tokio::time::interval(CLOCK_SYNC_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = clock.sync(store.as_ref()).await {
            tracing::debug!(error = %e, "clock sync failed; keeping the last offset");
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// signal arriving between "listening on" and the first poll must not kill the process with
/// the default action. Call it before binding.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {},
                        _ = terminate.recv() => {},
                    }
                }
                _ => std::future::pending::<()>().await,
            }
            tracing::info!("shutdown requested");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    }
}
