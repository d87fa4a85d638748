//! The physical limit of logins: raw argon2id hashes per second with the server's parameters,
//! on every core at once, each thread reusing one memory buffer as the server's workers do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use m2m_session_server::crypto::Argon2Settings;

/// Hashes completed per second by `threads` threads in `duration`, after `warmup`; and every
/// hash completed, warm-up included (for the CPU time per hash).
pub fn hashes_per_second(
    settings: Argon2Settings,
    threads: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(f64, u64)> {
    let params = Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        None,
    )
    .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let done = Arc::new(AtomicU64::new(0));
    let all = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + duration);
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (params, done, all) = (params.clone(), done.clone(), all.clone());
            std::thread::spawn(move || {
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut memory = vec![Block::default(); params.block_count()];
                let mut out = [0u8; 32];
                let salt = [i as u8; 16];
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    argon
                        .hash_password_into_with_memory(
                            b"bench password",
                            &salt,
                            &mut out,
                            &mut memory,
                        )
                        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
                    all.fetch_add(1, Ordering::Relaxed);
                    // Only hashes wholly inside the window count.
                    if began >= measure_from && Instant::now() <= end {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("argon2 thread panicked"))??;
    }
    Ok((
        done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64(),
        all.load(Ordering::Relaxed),
    ))
}
