//! `m2m-session-bench`: measurements that are not tests. Every figure that matters is a ratio
//! of two rates measured in the same run, because the machine is shared and noisy.
//!
//! All traffic goes to servers this process starts on 127.0.0.1; every loop is bounded in time.

mod costs;
mod driver;
mod load;
mod nodes;
mod perf;
mod pg;
mod pgproxy;
mod sdk;
mod seed;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "m2m-session-bench",
    about = "m2m-session benchmarks (loopback only, bounded)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Real `serve` processes on one PostgreSQL (1, 2, 3 nodes, and 1 writing every use):
    /// checks/s, p50/p99, /healthz req/s on the same nodes, row writes, transactions and WAL
    /// per check; then revocation across nodes under load, which must refuse every round
    /// (needs M2M_TEST_POSTGRES_URL or the local server)
    Nodes(nodes::Args),
    /// Per-operation costs on PostgreSQL with one real node (login, check, touch, logout,
    /// reset): server CPU, statements, row writes, WAL bytes and PostgreSQL CPU per operation
    Costs(costs::Args),
    /// Logins/s against raw argon2id hashes/s, session checks/s against health checks/s (with
    /// 1k and 1M live sessions), peak memory under a burst of logins, SDK against bare HTTP
    Perf(perf::Args),
    /// The SDK against bare HTTP: verify_session against the load generator on one endpoint,
    /// and the middleware against plain reqwest on a device-API stand-in
    Sdk(sdk::Args),
    /// A login's database work on one SQLite file, sqlx (as the server uses it) against
    /// rusqlite on a dedicated thread, A-B-B-A: logins/s, CPU µs, context switches, p50/p99
    Driver(driver::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Nodes(args) => nodes::run(args).await,
            Command::Costs(args) => costs::run(args).await,
            Command::Perf(args) => perf::run(args).await,
            Command::Sdk(args) => sdk::run(args).await,
            Command::Driver(args) => driver::run(args).await,
        }
    })
}
