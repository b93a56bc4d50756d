//! Schemathesis (the OpenAPI fuzzer, from PyPI) against `switchyard lab`, with every check on:
//! examples, coverage, fuzzing and stateful phases, with generated valid and invalid requests.
//! Zero failures means the server accepts exactly what `openapi.json` describes, answers only
//! what it documents, never 5xx, and refuses what it must. The few settings the fuzzer cannot
//! learn from a document are in `scripts/schemathesis.toml`, each with its reason.
//!
//! `SWITCHYARD_SCHEMATHESIS_SEED` picks another seed (the default is fixed so that CI is
//! repeatable); `SWITCHYARD_SCHEMATHESIS_EXAMPLES` the examples per operation (default 30).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The lab, stopped (by pid) when dropped.
struct Lab(Child);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `switchyard lab` on a free port; its base URL.
fn start_lab(log: &Path) -> (Lab, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["lab", "--listen", "127.0.0.1:0", "--global-rps", "0"])
        .args(["--play-ms", "300", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start switchyard lab");
    let stdout = child.stdout.take().unwrap();
    let lab = Lab(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("the lab's greeting")
        .expect("the lab's greeting");
    let base = first
        .split("API on ")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in the lab's greeting: {first}"))
        .trim()
        .to_owned();
    // Keep reading the greeting so the lab never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (lab, base)
}

#[test]
#[cfg_attr(
    not(schemathesis),
    ignore = "schemathesis is not installed: python3 -m pip install schemathesis (scripts/test-deps.sh does)"
)]
fn schemathesis_finds_nothing_against_the_lab() {
    let found = Command::new("schemathesis").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "schemathesis is required here but cannot be run ({found:?}): install it with \
         `python3 -m pip install schemathesis` (scripts/test-deps.sh does)"
    );
    let dir = std::env::temp_dir().join(format!("switchyard-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("lab.log");
    let (lab, base) = start_lab(&log);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/schemathesis.toml");
    let seed = std::env::var("SWITCHYARD_SCHEMATHESIS_SEED").unwrap_or_else(|_| "16031977".into());
    let examples =
        std::env::var("SWITCHYARD_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "30".into());
    let mut run = Command::new("schemathesis");
    run.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", &base])
        .args(["-H", "X-App-ID: lab-app", "-H", "X-API-Key: lab-key"])
        .args(["--checks", "all", "--max-examples", &examples])
        .args(["--workers", "1", "--continue-on-failure", "--no-color"])
        .current_dir(&dir);
    if seed != "random" {
        run.args(["--seed", &seed]);
    }
    let out = run.output().expect("run schemathesis");
    drop(lab);
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated") || l.contains(" in ") && l.contains('='))
        .collect();
    eprintln!("schemathesis: {}", summary.join(" | "));
    assert!(
        out.status.success(),
        "schemathesis found failures (lab log: {}):\n{report}\n{}",
        log.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran: a summary of generated and passed cases, every phase through.
    let ran = report
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no summary of generated cases:\n{report}"));
    assert!(ran.contains(" passed"), "{ran}");
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(
            report.contains(&format!("✅  {phase}")),
            "phase {phase} did not pass:\n{report}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
