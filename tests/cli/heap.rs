//! The process's memory settings: transparent huge pages off (`heap::no_huge_pages`). With them
//! on, mimalloc's arenas took 2 MiB pages that the kernel zeroed whole at each first touch, and
//! a saturated instance spent 11.6 % of its CPU doing so (docs/benchmarks.md, issue 59).

use std::io::Read;
use std::process::{Command, Stdio};

/// `switchyard openapi` writes more than a pipe holds: held at its first bytes (past the start
/// of `main`), its `/proc` status says whether the kernel may give it huge pages.
#[cfg(target_os = "linux")]
#[test]
fn the_process_runs_without_transparent_huge_pages() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("openapi")
        .env_remove("MIMALLOC_ALLOW_THP")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("switchyard runs");
    let mut stdout = child.stdout.take().expect("its standard output");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("the document begins");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .expect("the process's status");
    drop(stdout);
    let _ = child.wait();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("/proc/<pid>/status has THP_enabled (Linux 5.0 or later)");
    assert_eq!(
        line.split_whitespace().nth(1),
        Some("0"),
        "transparent huge pages are on for the process: {line}"
    );
}
