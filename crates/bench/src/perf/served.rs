//! The real `m2m-session` binary as a child process, so that its CPU and memory are its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Served {
    child: Child,
    pub base: String,
}

/// `m2m-session` beside this benchmark's own executable (`scripts/bench` builds both).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("benchmark executable has no directory")?
        .join("m2m-session");
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p m2m-session` (scripts/bench does)",
            bin.display()
        );
    }
    Ok(bin)
}

impl Served {
    /// Starts `serve` on 127.0.0.1:0 with default settings but for `extra`, and waits for the
    /// address it reports.
    /// `database` is a SQLite path or a PostgreSQL URL.
    pub async fn start(
        bin: &Path,
        database: impl AsRef<std::ffi::OsStr>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .env_clear()
            .env("RUST_LOG", "warn,m2m_session_server::server=info")
            .args(["serve", "--listen", "127.0.0.1:0", "--shutdown-delay", "0s"])
            .arg("--database")
            .arg(database)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut log = Vec::new();
        let wait = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(pos) = line.find("listening on ") {
                    let addr = line[pos + "listening on ".len()..].trim().to_owned();
                    return Ok::<_, anyhow::Error>(Some(addr));
                }
                log.push(line);
            }
            Ok(None)
        };
        let addr = tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .context("server did not report its address within 30 s")??;
        let Some(addr) = addr else {
            bail!("server exited before listening:\n{}", log.join("\n"));
        };
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            base: format!("http://{addr}"),
        })
    }

    /// Peak resident memory of the server since it started (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmHWM:")
    }

    /// Resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmRSS:")
    }

    /// CPU time the server has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid()?)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("server already exited")
    }

    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let pid = self.child.id().context("server already exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in /proc/{pid}/status"))
    }

    /// A graceful stop (SIGTERM, as an orchestrator would), killed if it takes over 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// CPU time a process has used so far, user and system, all its threads. Time the hypervisor
/// gave to other machines is not counted, so costs measured this way vary less than rates.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces: the
    // state is field 3, utime and stime are fields 14 and 15 (proc(5)).
    let after = stat.rsplit_once(')').context("unreadable /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
