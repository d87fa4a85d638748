//! Sets `M2M_SESSION_COMMIT` for `m2m_session_build_info`: the variable of that name when the
//! build has it (e.g. a container build without `.git`), else `git rev-parse --short=12 HEAD`,
//! else `unknown`. Never fails the build.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=M2M_SESSION_COMMIT");
    let commit = std::env::var("M2M_SESSION_COMMIT")
        .ok()
        .filter(|c| is_sane(c))
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=M2M_SESSION_COMMIT={commit}");
}

fn git_commit() -> Option<String> {
    // Rebuild when HEAD moves: a checkout changes HEAD, a commit the branch's ref. Only files
    // that exist are watched (cargo reruns a script on every build for a missing one).
    let git_dir = git(&["rev-parse", "--git-dir"])?;
    watch(&Path::new(&git_dir).join("HEAD"));
    if let (Some(common), Some(branch)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        watch(&Path::new(&common).join(branch));
        watch(&Path::new(&common).join("packed-refs"));
    }
    git(&["rev-parse", "--short=12", "HEAD"]).filter(|c| is_sane(c))
}

fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// What a label value may hold: a short id, nothing that could break the exposition format.
fn is_sane(commit: &str) -> bool {
    (1..=64).contains(&commit.len())
        && commit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
