//! `switchyard webhook verify`: a receiver's check of our signatures, from the command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use switchyard::webhook::sign::Signer;

fn verify(
    secret: &str,
    id: &str,
    ts: &str,
    sig: &str,
    body: &[u8],
    extra: &[&str],
) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "webhook",
            "verify",
            "--id",
            id,
            "--timestamp",
            ts,
            "--signature",
            sig,
        ])
        .args(extra)
        .env("SWITCHYARD_WEBHOOK_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn our_signatures_verify_and_tampering_does_not() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let signer = Signer::parse(secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = br#"{"id":"msg_1-0","type":"conference.created"}"#;
    let sig = signer.signature("msg_1-0", now, body).unwrap();
    let ts = now.to_string();
    let (ok, text) = verify(secret, "msg_1-0", &ts, &sig, body, &[]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "ok");
    // A changed body, id or secret fails, and says why.
    let (ok, text) = verify(secret, "msg_1-0", &ts, &sig, b"{}", &[]);
    assert!(!ok);
    assert!(text.contains("not verified"), "{text}");
    let (ok, _) = verify(secret, "msg_2-0", &ts, &sig, body, &[]);
    assert!(!ok);
    let other = "whsec_QWxsIHlvdXIgYmFzZSBhcmUgYmVsb25nIHRvIHVz";
    let (ok, _) = verify(other, "msg_1-0", &ts, &sig, body, &[]);
    assert!(!ok);
    // During a rotation either secret verifies.
    let (ok, _) = verify(
        &format!("{other} {secret}"),
        "msg_1-0",
        &ts,
        &sig,
        body,
        &[],
    );
    assert!(ok);
    // An old message fails the time check unless told to ignore it.
    let old = now - 3600;
    let sig = signer.signature("msg_1-0", old, body).unwrap();
    let (ok, text) = verify(secret, "msg_1-0", &old.to_string(), &sig, body, &[]);
    assert!(!ok, "{text}");
    let (ok, _) = verify(
        secret,
        "msg_1-0",
        &old.to_string(),
        &sig,
        body,
        &["--ignore-time"],
    );
    assert!(ok);
}

#[test]
fn a_new_secret_is_usable() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["webhook", "secret"])
        .output()
        .unwrap();
    let secret = String::from_utf8(out.stdout).unwrap();
    assert!(secret.starts_with("whsec_"));
    assert!(Signer::parse(secret.trim()).is_ok());
    let again = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["webhook", "secret"])
        .output()
        .unwrap();
    assert_ne!(again.stdout, secret.as_bytes(), "random each time");
}
