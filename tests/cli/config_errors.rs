//! A configuration file that does not parse is told by its line and column, never by its text
//! (issue 56): `switchyard config check` and `switchyard serve` exit non-zero naming where and
//! what, and a secret on that line (an unterminated string, a password of the wrong type) is
//! not printed. toml's own message quotes the line, serde's quotes the value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const NODE: &str = "[[nodes]]\nname = \"n1\"\nprefix = \"nodea\"\nesl = \"127.0.0.1:1\"\n";

fn file(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "switchyard-unparsed-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// `switchyard <args> <file>`: (success, standard output and error).
fn run(args: &[&str], file: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .arg(file)
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_file_that_does_not_parse_is_told_by_line_and_column_never_by_its_secret() {
    let cases = [
        (
            format!("{NODE}password = \"p\"\n[recordings]\nsecret_access_key = \"SECRETVALUE\n"),
            "SECRETVALUE",
            "line 7, column 33: invalid basic string",
        ),
        (
            format!("{NODE}password = 86753094242\n"),
            "86753094242",
            "line 5, column 12: invalid type: integer, expected a string",
        ),
    ];
    for (text, secret, told) in cases {
        let path = file(&text);
        for command in [&["config", "check"][..], &["serve", "--config"][..]] {
            let (ok, out) = run(command, &path);
            assert!(!ok, "{command:?} accepted it: {out}");
            assert!(
                out.contains(&format!("invalid configuration: {told}")),
                "{command:?}: {out}"
            );
            assert!(
                !out.contains(secret),
                "{command:?} printed the secret: {out}"
            );
        }
        std::fs::remove_file(path).unwrap();
    }
}
