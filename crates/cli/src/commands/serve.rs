use anyhow::Context;
use m2m_session_server::{Server, ServerConfig, shutdown_signal};

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    // Before binding: from the first "listening on", SIGTERM means a graceful stop.
    let shutdown = shutdown_signal();
    let server = Server::bind(&config)
        .await
        .with_context(|| format!("cannot start with database {}", config.database))?;
    server.run(shutdown).await.context("server failed")
}
