use m2m_session_server::{Server, ServerConfig, shutdown_signal};

pub async fn run(mut config: ServerConfig) -> anyhow::Result<()> {
    // Before binding: from the first "listening on", SIGTERM means a graceful stop.
    let shutdown = shutdown_signal();
    // The simulator never touches a real database unless told to: it gets a throwaway one,
    // removed when the server stops.
    let throwaway = if config.policy.simulator && config.database.is_empty() {
        let dir = tempfile::Builder::new()
            .prefix("m2m-session-simulator-")
            .tempdir()
            .map_err(|e| {
                anyhow::anyhow!("cannot create the simulator's temporary database: {e}")
            })?;
        config.database = dir.path().join("simulator.db").display().to_string();
        Some(dir)
    } else {
        None
    };
    if config.policy.simulator {
        tracing::warn!(
            "SIMULATOR MODE: any OAuth client id and any username are accepted and created on \
             first use, with whatever secret or password comes first. For offline testing only; \
             never with real devices, users or data."
        );
        if throwaway.is_some() {
            tracing::info!(
                "the simulator's data is kept in a temporary database, {}, deleted at exit; \
                 pass --database to keep it",
                config.database
            );
        }
    }
    let server = Server::bind(&config).await.map_err(|e| {
        anyhow::anyhow!(super::start_failure(
            &e,
            &config.database,
            config.metrics_listen
        ))
    })?;
    server
        .run(shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("the server stopped with an error: {e}"))
}
