//! `--log-format json` and `[log] format` on the real binary: `switchyard lab` and
//! `switchyard serve` write JSON lines on standard error (an API request's lines carrying its
//! request id), and the command-line flag wins over the configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn switchyard(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("SWITCHYARD_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `addr` accepts connections (the API is up).
pub(crate) fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("switchyard exited ({status}) before listening: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the API never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request; the raw answer.
fn get(addr: SocketAddr, path: &str, request_id: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-Request-Id: {request_id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Stops the process; what it wrote on standard output and standard error.
fn stop(mut child: Child) -> (String, String) {
    // Give the last lines a moment to be written, then kill.
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every line of `text`, each of which must be a JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

#[test]
fn the_lab_logs_json_lines_that_carry_the_request_id() {
    let addr = free_addr();
    let listen = addr.to_string();
    let mut child = switchyard(&["lab", "--listen", &listen, "--log-format", "json"]);
    wait_listening(addr, &mut child);
    let answer = get(addr, "/api/v1/conferences", "cli-json-1");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nx-request-id: cli-json-1\r\n"),
        "{answer}"
    );
    let (stdout, stderr) = stop(child);
    // The greeting is on standard output; standard error holds JSON lines only.
    assert!(stdout.contains("switchyard lab: API on"), "{stdout}");
    let lines = json_lines(&stderr);
    let request = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "cli-json-1")
        .unwrap_or_else(|| panic!("no line carries the request id: {stderr}"));
    assert_eq!(request["fields"]["message"], "request");
    assert_eq!(request["fields"]["status"], 401);
    assert_eq!(request["span"]["route"], "/api/v1/conferences");
    assert_eq!(request["level"], "INFO");
    assert!(!stderr.contains("lab-key"), "{stderr}");
}

#[test]
fn serve_takes_the_format_from_the_config_and_the_flag_wins() {
    let dir = std::env::temp_dir().join(format!("switchyard-logfmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |extra: &[&str]| {
        let addr = free_addr();
        let config = dir.join(format!("{}.toml", addr.port()));
        // A node nobody answers on: the API listens all the same, and the lines say so.
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\n[log]\nformat = \"json\"\n\
                 [[nodes]]\nname = \"fs1\"\nprefix = \"abcde\"\nesl = \"127.0.0.1:1\"\npassword = \"p\"\n"
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap().to_owned();
        let mut args = vec!["serve", "--config", config.as_str()];
        args.extend_from_slice(extra);
        let mut child = switchyard(&args);
        wait_listening(addr, &mut child);
        stop(child).1
    };

    let stderr = run(&[]);
    let lines = json_lines(&stderr);
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "switchyard API listening"),
        "{stderr}"
    );

    let stderr = run(&["--log-format", "text"]);
    let listening = stderr
        .lines()
        .find(|l| l.contains("switchyard API listening"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        serde_json::from_str::<Value>(listening).is_err(),
        "--log-format text wins over the config: {listening}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
