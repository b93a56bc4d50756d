//! Configuration without restarts (issue 37): a `switchyard serve` process on a simulated node,
//! its file rewritten and SIGHUP sent. Keys are added and removed for an app and for the
//! operator, an app is added, limits change, webhook secrets rotate, and nothing in flight
//! fails; a file that does not check, or changes what only a restart applies, is refused and
//! the configuration in force stays. `/metrics`, on its own address (`metrics_listen`, which
//! only a restart changes), tells the generation and the reloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::common::serve::{Api, Serve, free_port, node_toml, until};
use crate::webhook_support::{Receiver, secret};
use switchyard::api::hash_key;
use switchyard::sim::{SimConfig, Simulator};
use switchyard::webhook::sign::{Secret, verify};

const PASSWORD: &str = "reload-test-esl";
const WITHIN: Duration = Duration::from_secs(10);

/// One configuration: app1's keys, app2's if any, the operator's keys, app1's webhook secrets.
struct Conf<'a> {
    app1: &'a [&'a str],
    app2: Option<&'a str>,
    admin: &'a [&'a str],
    secrets: &'a [String],
    global_rps: u32,
}

/// The configuration of an instance listening on `listen`, with its metrics on `metrics`.
fn text(listen: u16, metrics: u16, sim: &Simulator, hook: &str, c: &Conf) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let list = |keys: &[&str]| {
        let hashed: Vec<String> = keys.iter().map(|k| q(&hash_key(k))).collect();
        format!("[{}]", hashed.join(", "))
    };
    let secrets: Vec<String> = c.secrets.iter().map(|s| q(s)).collect();
    let mut t = format!(
        "listen = {}\nmetrics_listen = {}\nadmin_key_sha256 = {}\n\
         [limits]\nglobal_rps = {}\nglobal_burst = {}\n\
         [webhooks]\nallow_private = true\nretry_schedule_secs = [1, 1, 1]\n\
         [[apps]]\nid = \"app1\"\nkey_sha256 = {}\nwebhook_url = {}\nwebhook_secret = [{}]\n",
        q(&format!("127.0.0.1:{listen}")),
        q(&format!("127.0.0.1:{metrics}")),
        list(c.admin),
        c.global_rps,
        if c.global_rps == 0 {
            1000
        } else {
            c.global_rps
        },
        list(c.app1),
        q(hook),
        secrets.join(", "),
    );
    if let Some(key) = c.app2 {
        t.push_str(&format!(
            "[[apps]]\nid = \"app2\"\nkey_sha256 = {}\n",
            q(&hash_key(key))
        ));
    }
    t.push_str(&node_toml("rld01", &sim.addr().to_string(), PASSWORD, ""));
    t
}

struct Setup {
    serve: Serve,
    base: String,
    path: std::path::PathBuf,
    port: u16,
    /// Where `/metrics` is served, with no key.
    metrics_port: u16,
    sim: Simulator,
    receiver: Receiver,
}

impl Setup {
    async fn start(name: &str, c: &Conf<'_>) -> Setup {
        let sim = Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            password: PASSWORD.into(),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let receiver = Receiver::ok().await;
        let (port, metrics_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("switchyard-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.toml"));
        let file = text(port, metrics_port, &sim, &receiver.url(), c);
        std::fs::write(&path, file).unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let serve = Serve::start(&path, &base).await;
        Setup {
            serve,
            base,
            path,
            port,
            metrics_port,
            sim,
            receiver,
        }
    }

    /// Writes `file` over the configuration and sends SIGHUP.
    fn hangup_with(&self, file: &str) {
        std::fs::write(&self.path, file).unwrap();
        let pid = self.serve.pid().to_string();
        let sent = Command::new("kill").args(["-HUP", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGHUP to {pid}");
    }

    fn reload(&self, c: &Conf<'_>) {
        let file = text(
            self.port,
            self.metrics_port,
            &self.sim,
            &self.receiver.url(),
            c,
        );
        self.hangup_with(&file);
    }

    /// A sample of `/metrics` (0 when absent), from its own address: no key.
    async fn metric(&self, line_start: &str) -> f64 {
        let body = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn generation_is(&self, n: u64) {
        until(WITHIN, &format!("configuration generation {n}"), || async {
            (self.metric("switchyard_config_generation ").await == n as f64).then_some(())
        })
        .await;
    }

    async fn refusals_are(&self, n: u64) {
        let line = "switchyard_config_reloads_total{result=\"refused\"} ";
        until(WITHIN, &format!("{n} refused reloads"), || async {
            (self.metric(line).await == n as f64).then_some(())
        })
        .await;
    }

    async fn status(&self, app: &str, key: &str) -> u16 {
        Api::new(&self.base, app, key)
            .call("GET", "/api/v1/conferences", None)
            .await
            .0
    }

    async fn operator(&self, key: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("{}/api/v1/operator/overview", self.base))
            .header("X-Admin-Key", key)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_apps_and_limits_change_on_sighup_and_no_request_fails() {
    let secrets = [secret()];
    let first = Conf {
        app1: &["k-one", "k-steady"],
        app2: None,
        admin: &["root-one"],
        secrets: &secrets,
        global_rps: 0,
    };
    let s = Setup::start("keys", &first).await;
    s.generation_is(1).await;
    assert_eq!(s.status("app1", "k-one").await, 200);
    assert_eq!(s.status("app1", "k-two").await, 401);
    assert_eq!(s.status("app2", "k-three").await, 401);
    assert_eq!(s.operator("root-one").await, 200);
    assert_eq!(s.operator("root-two").await, 401);

    // Requests with a key every generation keeps, through every reload: none fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        let api = Api::new(&s.base, "app1", "k-steady");
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = api.call("GET", "/api/v1/conferences", None).await;
                sent.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // A second key for app1, the first one dropped, app2 added, a second operator key.
    s.reload(&Conf {
        app1: &["k-steady", "k-two"],
        app2: Some("k-three"),
        admin: &["root-one", "root-two"],
        ..first
    });
    s.generation_is(2).await;
    assert_eq!(s.status("app1", "k-one").await, 401, "a removed key");
    assert_eq!(s.status("app1", "k-two").await, 200, "an added key");
    assert_eq!(s.status("app2", "k-three").await, 200, "an added app");
    assert_eq!(s.operator("root-one").await, 200);
    assert_eq!(s.operator("root-two").await, 200);

    // The old operator key dropped; app2 removed.
    s.reload(&Conf {
        app1: &["k-steady", "k-two"],
        admin: &["root-two"],
        ..first
    });
    s.generation_is(3).await;
    assert_eq!(s.operator("root-one").await, 401);
    assert_eq!(s.operator("root-two").await, 200);
    assert_eq!(s.status("app2", "k-three").await, 401, "a removed app");

    // Refused: a key that is not a hash, and a new listen address. Generation 3 stays.
    let good = text(s.port, s.metrics_port, &s.sim, &s.receiver.url(), &first);
    s.hangup_with(&good.replace(&hash_key("k-one"), "not-a-hash"));
    s.refusals_are(1).await;
    s.hangup_with(&good.replace(&format!(":{}", s.port), &format!(":{}", free_port())));
    s.refusals_are(2).await;
    s.generation_is(3).await;
    assert_eq!(
        s.status("app1", "k-two").await,
        200,
        "the configuration in force stays"
    );
    assert_eq!(s.status("app1", "k-one").await, 401);

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 20, "only {sent} requests made during the reloads");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the reloads"
    );

    // A limit changed by a reload: one request a second, bursts of one: then 429s.
    s.reload(&Conf {
        app1: &["k-steady"],
        global_rps: 1,
        ..first
    });
    s.generation_is(4).await;
    let api = Api::new(&s.base, "app1", "k-steady");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(api.call("GET", "/api/v1/conferences", None).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// The signatures a delivery carries, and whether each secret verifies it.
fn signed_by(r: &crate::webhook_support::Received, secrets: &[&str]) -> (usize, Vec<bool>) {
    let h = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_owned();
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ok = secrets
        .iter()
        .map(|s| {
            let secret = Secret::parse(s).unwrap();
            verify(&[secret], &id, &ts, &sig, &r.body, now).is_ok()
        })
        .collect();
    (sig.split_whitespace().count(), ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_secret_rotates_by_reload_with_both_signing_in_between() {
    let (old, new) = (secret(), Secret::generate());
    let only_old = [old.clone()];
    let conf = Conf {
        app1: &["k"],
        app2: None,
        admin: &["root"],
        secrets: &only_old,
        global_rps: 0,
    };
    let s = Setup::start("secrets", &conf).await;
    let api = Api::new(&s.base, "app1", "k");
    // A room created, and the first delivery about it (made after the reload before it).
    let mut rooms = 0;
    let mut create = async || {
        rooms += 1;
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/conferences",
                Some(json!({"name": format!("r{rooms}")})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let room = body["room_id"].as_str().unwrap().to_owned();
        until(WITHIN, "a delivery about the new room", || async {
            s.receiver
                .delivered()
                .into_iter()
                .find(|r| r.room() == room)
        })
        .await
    };
    let first = create().await;
    assert_eq!(signed_by(&first, &[&old, &new]), (1, vec![true, false]));

    // Both secrets: every delivery carries both signatures.
    let both = [new.clone(), old.clone()];
    s.reload(&Conf {
        secrets: &both,
        ..conf
    });
    s.generation_is(2).await;
    let second = create().await;
    assert_eq!(signed_by(&second, &[&old, &new]), (2, vec![true, true]));

    // The old one dropped.
    let only_new = [new.clone()];
    s.reload(&Conf {
        secrets: &only_new,
        ..conf
    });
    s.generation_is(3).await;
    let third = create().await;
    assert_eq!(signed_by(&third, &[&old, &new]), (1, vec![false, true]));
}

/// `switchyard config check <file> [--against <file>]`: (exit status, standard output).
fn check(file: &std::path::Path, against: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.arg("config").arg("check").arg(file);
    if let Some(a) = against {
        cmd.arg("--against").arg(a);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn config_check_validates_and_says_what_a_reload_would_change() {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let secrets = [secret()];
    let conf = Conf {
        app1: &["k1"],
        app2: None,
        admin: &["root"],
        secrets: &secrets,
        global_rps: 0,
    };
    let dir = std::env::temp_dir().join(format!("switchyard-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let hook = "http://127.0.0.1:9/hook";
    let old = write("old.toml", &text(8080, 9090, &sim, hook, &conf));
    let new = write(
        "new.toml",
        &text(
            8080,
            9090,
            &sim,
            hook,
            &Conf {
                app1: &["k1", "k2"],
                app2: Some("k3"),
                ..conf
            },
        ),
    );
    let (ok, out) = check(&new, None);
    assert!(ok && out.contains("valid (1 node(s), 2 app(s))"), "{out}");
    let (ok, out) = check(&new, Some(&old));
    assert!(ok, "{out}");
    assert!(out.contains("app app1: 1 key(s) added, 0 removed"), "{out}");
    assert!(out.contains("app app2: added"), "{out}");
    assert!(!out.contains(&hash_key("k2")), "a hash printed: {out}");
    let (ok, out) = check(&old, Some(&old));
    assert!(ok && out.contains("no change"), "{out}");
    let moved = write("moved.toml", &text(8081, 9090, &sim, hook, &conf));
    let (ok, out) = check(&moved, Some(&old));
    assert!(!ok && out.contains("listen"), "{out}");
    let scraped = write("scraped.toml", &text(8080, 9091, &sim, hook, &conf));
    let (ok, out) = check(&scraped, Some(&old));
    assert!(!ok && out.contains("metrics_listen"), "{out}");
    let bad = write(
        "bad.toml",
        &text(8080, 9090, &sim, hook, &conf).replace(&hash_key("k1"), "zz"),
    );
    let (ok, out) = check(&bad, Some(&old));
    assert!(!ok && out.contains("64 hex digits"), "{out}");
}

/// A room created through `api`, once progressing: its id.
async fn progressing(api: &Api, name: &str) -> String {
    let (status, body) = api
        .call("POST", "/api/v1/conferences", Some(json!({ "name": name })))
        .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room_id"].as_str().unwrap().to_owned();
    until(WITHIN, "the room is progressing", || async {
        let (_, b) = api
            .call("GET", &format!("/api/v1/conferences/{room}"), None)
            .await;
        (b["status"] == "progressing").then_some(())
    })
    .await;
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_by_reload_takes_rooms_and_one_with_live_rooms_is_not_removed() {
    let secrets = [secret()];
    let conf = Conf {
        app1: &["k"],
        app2: None,
        admin: &["root"],
        secrets: &secrets,
        global_rps: 0,
    };
    let s = Setup::start("nodes", &conf).await;
    let api = Api::new(&s.base, "app1", "k");
    let second = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        password: PASSWORD.into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let first_node = node_toml("rld01", &s.sim.addr().to_string(), PASSWORD, "");
    let second_node = node_toml("rld02", &second.addr().to_string(), PASSWORD, "");
    let one = text(s.port, s.metrics_port, &s.sim, &s.receiver.url(), &conf);
    assert!(one.contains(&first_node));
    let before = progressing(&api, "before").await;
    assert!(before.starts_with("rld01-"), "{before}");

    // Added: it connects, and takes the next room (it has the fewest).
    s.hangup_with(&format!("{one}{second_node}"));
    s.generation_is(2).await;
    until(WITHIN, "the added node is up", || async {
        let (_, ready) = api.call("GET", "/readyz", None).await;
        (ready["nodes"]["rld02"] == "up").then_some(())
    })
    .await;
    let after = progressing(&api, "after").await;
    assert!(after.starts_with("rld02-"), "{after}");

    // The first node still hosts a room: its removal is refused, and nothing changes.
    let without_first = format!("{}{second_node}", one.replace(&first_node, ""));
    s.hangup_with(&without_first);
    s.refusals_are(1).await;
    s.generation_is(2).await;
    let (_, ready) = api.call("GET", "/readyz", None).await;
    assert_eq!(ready["nodes"]["rld01"], "up", "{ready}");

    // Once its room ended, it goes.
    let (status, _) = api
        .call("DELETE", &format!("/api/v1/conferences/{before}"), None)
        .await;
    assert_eq!(status, 200);
    until(WITHIN, "the room ended", || async {
        let (status, b) = api
            .call("GET", &format!("/api/v1/conferences/{before}"), None)
            .await;
        (status == 404 || b["status"] == "terminated").then_some(())
    })
    .await;
    // The store counts the room until the node confirms its end: until then the removal is
    // refused again (each refusal counted); then it is applied.
    let mut refusals = 1;
    let applied = until(WITHIN, "the node's removal is applied", || {
        s.hangup_with(&without_first);
        refusals += 1;
        let expect = refusals;
        let s = &s;
        async move {
            let line = "switchyard_config_reloads_total{result=\"refused\"} ";
            for _ in 0..40 {
                if s.metric("switchyard_config_generation ").await == 3.0 {
                    return Some(());
                }
                if s.metric(line).await >= expect as f64 {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            None
        }
    });
    applied.await;
    let (_, ready) = api.call("GET", "/readyz", None).await;
    assert!(ready["nodes"].get("rld01").is_none(), "{ready}");
    let last = progressing(&api, "last").await;
    assert!(last.starts_with("rld02-"), "{last}");
}
