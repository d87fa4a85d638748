use anyhow::Context;
use m2m_session_server::{Server, ServerConfig, shutdown_signal};

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let server = Server::bind(&config)
        .await
        .with_context(|| format!("cannot start with database {}", config.database))?;
    server.run(shutdown_signal()).await.context("server failed")
}
