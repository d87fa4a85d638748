use anyhow::Context;
use m2m_session_server::{Server, ServerConfig, shutdown_signal};

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    // Before binding: from the first "listening on", SIGTERM means a graceful stop.
    let shutdown = shutdown_signal();
    if config.policy.simulator {
        tracing::warn!(
            "SIMULATOR MODE: any OAuth client id and any username are accepted and created on \
             first use, with whatever secret or password comes first. For offline testing only; \
             never with real devices, users or data."
        );
    }
    let server = Server::bind(&config).await.with_context(|| {
        format!(
            "cannot start with database {}",
            super::redact_url(&config.database)
        )
    })?;
    server.run(shutdown).await.context("server failed")
}
