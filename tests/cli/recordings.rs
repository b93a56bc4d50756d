//! `[recordings] store = "s3"` as the operator first meets it, against a real Garage: a bucket
//! that refuses the credentials is told by `switchyard config check` and by `switchyard serve`,
//! which will not start, each naming the bucket and where the credentials come from; good ones
//! are told as such.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use crate::common::garage::Garage;

fn config(g: &Garage) -> std::path::PathBuf {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let text = format!(
        "{}[[nodes]]\nname = \"n1\"\nprefix = \"nodea\"\n\
         esl = \"127.0.0.1:1\"\npassword = \"p\"\n\
         [[apps]]\nid = \"app1\"\nkey_sha256 = {}\n",
        g.recordings_toml("cli"),
        q(&switchyard::api::hash_key("k")),
    );
    let file = std::env::temp_dir().join(format!(
        "switchyard-recordings-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, text).unwrap();
    file
}

/// Runs `switchyard <args>` with these S3 credentials: (success, stdout, stderr).
fn run(args: &[&str], key: &str, secret: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("SWITCHYARD_S3_ACCESS_KEY_ID", key)
        .env("SWITCHYARD_S3_SECRET_ACCESS_KEY", secret)
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
#[cfg_attr(
    not(garage),
    ignore = "needs Garage: bash ../shared/garage/install.sh (or scripts/test-deps.sh)"
)]
async fn a_bucket_that_refuses_the_credentials_is_told_by_config_check_and_serve() {
    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let file = config(&g);
    let path = file.to_str().unwrap().to_owned();
    let path = path.as_str();

    let (ok, out, err) = run(&["config", "check", path], &g.key_id, &g.secret);
    assert!(ok, "{out}{err}");
    assert!(out.contains("the bucket takes these credentials"), "{out}");

    let (ok, out, err) = run(&["config", "check", path], &g.key_id, "not-the-secret");
    assert!(!ok, "{out}");
    for said in [
        "refuses this controller",
        &g.bucket,
        "403",
        "SWITCHYARD_S3_SECRET_ACCESS_KEY",
    ] {
        assert!(err.contains(said), "{said:?} in: {err}");
    }
    assert!(
        !err.contains("not-the-secret"),
        "the secret is never written: {err}"
    );

    let owned = path.to_owned();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || run(&["serve", "--config", &owned], "GK-unknown", "x"))
            .await
            .unwrap();
    assert!(!ok, "serve does not start: {err}");
    assert!(err.contains("refuses this controller"), "{err}");
    let _ = std::fs::remove_file(&file);
}
