//! `/metrics` of a `switchyard serve` process (issue 56): the exposition names every app, so on
//! the API's port it takes the operator's key (`X-Admin-Key`, or `Authorization: Bearer` as
//! Prometheus sends it), and with no operator key nothing opens it (`serve` warns at start);
//! with `metrics_listen` it is served on that address with no key, and the API's port answers
//! 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crate::common::serve::{Serve, free_port, node_toml};
use switchyard::api::hash_key;
use switchyard::sim::{SimConfig, Simulator};

const PASSWORD: &str = "metrics-test-esl";
const OPERATOR: &str = "metrics-cli-operator";

/// A simulated node and the configuration of an instance over it, listening on `api`, with
/// `top` (top-level lines) first.
async fn setup(name: &str, api: u16, top: &str) -> (Simulator, PathBuf) {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        password: PASSWORD.into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let text = format!(
        "listen = \"127.0.0.1:{api}\"\n{top}{}",
        node_toml("mtr01", &sim.addr().to_string(), PASSWORD, "")
    );
    let dir = std::env::temp_dir().join(format!("switchyard-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    (sim, path)
}

fn operator_line() -> String {
    format!("admin_key_sha256 = \"{}\"\n", hash_key(OPERATOR))
}

/// `GET url` with these headers: (status, body).
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_metrics_to_the_operator_key_or_to_an_address_of_their_own() {
    let api = free_port();
    let (_sim, path) = setup("keyed", api, &operator_line()).await;
    let base = format!("http://127.0.0.1:{api}");
    let _keyed = Serve::start(&path, &base).await;
    let metrics = format!("{base}/metrics");
    let bearer = format!("Bearer {OPERATOR}");
    for refused in [
        &[][..],
        &[("x-admin-key", "wrong")][..],
        &[("authorization", "Bearer wrong")][..],
    ] {
        let (status, body) = get(&metrics, refused).await;
        assert_eq!(status, 401, "{refused:?}: {body}");
        assert!(!body.contains("switchyard_"), "{body}");
    }
    for accepted in [
        &[("x-admin-key", OPERATOR)][..],
        &[("authorization", &*bearer)][..],
    ] {
        let (status, body) = get(&metrics, accepted).await;
        assert_eq!(status, 200, "{accepted:?}: {body}");
        assert!(
            body.contains("switchyard_node_connected{node=\"mtr01\"}"),
            "{body}"
        );
    }

    let (api, scrape) = (free_port(), free_port());
    let top = format!(
        "metrics_listen = \"127.0.0.1:{scrape}\"\n{}",
        operator_line()
    );
    let (_sim, path) = setup("apart", api, &top).await;
    let base = format!("http://127.0.0.1:{api}");
    let _apart = Serve::start(&path, &base).await;
    let (status, body) = get(&format!("http://127.0.0.1:{scrape}/metrics"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("switchyard_node_connected{node=\"mtr01\"}"),
        "{body}"
    );
    for headers in [&[][..], &[("authorization", &*bearer)][..]] {
        let (status, body) = get(&format!("{base}/metrics"), headers).await;
        assert_eq!(status, 404, "{headers:?}: {body}");
    }
}

#[tokio::test]
async fn serve_without_an_operator_key_warns_that_nothing_can_scrape() {
    let api = free_port();
    let (_sim, path) = setup("keyless", api, "").await;
    let base = format!("http://127.0.0.1:{api}");
    let _serve = Serve::start_logged(&path, &base).await;
    let (status, body) = get(&format!("{base}/metrics"), &[("x-admin-key", OPERATOR)]).await;
    assert_eq!(status, 401, "{body}");
    let log = std::fs::read_to_string(path.with_extension("log")).unwrap();
    let warned = log
        .lines()
        .filter(|l| l.contains("GET /metrics answers 401") && l.contains("WARN"))
        .count();
    assert_eq!(warned, 1, "{log}");
}
