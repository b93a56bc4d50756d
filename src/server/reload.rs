//! Configuration without restarts: `SIGHUP` reads the file again and puts it in force, and
//! `switchyard config check` says what a file would change.
//!
//! What a reload changes: applications (added, removed, their keys, DIDs, talking events,
//! dial-out permissions and caller ids, webhook URLs and secrets, quotas), the operator's keys,
//! `[limits]`' rates, cooldowns and the nodes' reserved sessions, `[quotas]`, and media nodes added (they connect and take rooms) or removed (refused while the
//! node hosts a live room: drain it first). A new file is checked whole, and every dispatcher it needs is started, before
//! any part of it is put in force; then each part is swapped in one step (keys, directory,
//! cooldowns, webhook targets), so a request sees the old or the new part, never a mixture
//! within one part. A request in flight finishes under what it started with: a webhook request
//! keeps the URL and secrets it began with, and an authenticated request is not checked again.
//!
//! Refused, with the reason, and the configuration in force stays: a file that does not parse
//! or check, and a change to what is read only at start (the listen addresses, Redis, the
//! store's layout and retention, the fleet lease, `[webhooks]`, `[outbox]`, `[log]`,
//! `[recordings]`, `[playback]`, `[limits]`' connection and admission limits, a node's
//! own settings: a restart, one instance at a time, applies those).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::config::{App, Config, ConfigError, Node, OneOrMore};
use crate::api::ApiState;
use crate::conference::{AppId, NodePrefix};
use crate::node::spawner::Spawner;
use crate::store::Store;
use crate::webhook::{DispatcherConfig, Webhook};

fn refused(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// What `new` changes from `old`, one line per change (never a key, a hash or a secret); an
/// error when `new` changes something only a restart applies.
pub fn changes(old: &Config, new: &Config) -> Result<Vec<String>, ConfigError> {
    let restart_only: Vec<&str> = [
        ("listen", old.listen == new.listen),
        ("metrics_listen", old.metrics_listen == new.metrics_listen),
        ("redis_url", old.redis_url == new.redis_url),
        ("cursor_secret", old.cursor_secret == new.cursor_secret),
        (
            "room_retention_secs",
            old.room_retention_secs == new.room_retention_secs,
        ),
        ("room_cache", old.room_cache == new.room_cache),
        (
            "session_retention_secs",
            old.session_retention_secs == new.session_retention_secs,
        ),
        ("redis_shards", old.redis_shards == new.redis_shards),
        ("redis_replicas", old.redis_replicas == new.redis_replicas),
        (
            "event_retention_secs",
            old.event_retention_secs == new.event_retention_secs,
        ),
        ("node_lease_ms", old.node_lease_ms == new.node_lease_ms),
        ("advertise_url", old.advertise_url == new.advertise_url),
        ("[webhooks]", old.webhooks == new.webhooks),
        ("[outbox]", old.outbox == new.outbox),
        ("[log]", old.log == new.log),
        ("[recordings]", old.recordings == new.recordings),
        ("[playback]", old.playback == new.playback),
        (
            "[limits]' connection and admission limits",
            old.limits.read_at_start() == new.limits.read_at_start(),
        ),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(name, _)| name)
    .collect();
    if !restart_only.is_empty() {
        return Err(refused(format!(
            "{} change only with a restart; the configuration in force stays",
            restart_only.join(", ")
        )));
    }
    let mut out = node_changes(old, new)?;
    let by_id = |c: &Config| -> HashMap<String, App> {
        c.apps.iter().map(|a| (a.id.clone(), a.clone())).collect()
    };
    let (before, after) = (by_id(old), by_id(new));
    let ids: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for id in ids {
        match (before.get(id), after.get(id)) {
            (None, Some(_)) => out.push(format!("app {id}: added")),
            (Some(_), None) => out.push(format!("app {id}: removed")),
            (Some(a), Some(b)) => out.extend(app_changes(a, b)),
            (None, None) => {}
        }
    }
    if let Some(line) = key_changes(
        "operator",
        old.admin_key_sha256.as_ref(),
        new.admin_key_sha256.as_ref(),
    ) {
        out.push(line);
    }
    if old.limits != new.limits {
        out.push(format!("[limits]: {:?} -> {:?}", old.limits, new.limits));
    }
    if old.quotas() != new.quotas() {
        out.push(format!("[quotas]: {:?} -> {:?}", old.quotas, new.quotas));
        for app in &new.apps {
            if before.get(&app.id).is_some_and(|a| a.quotas != app.quotas) {
                out.push(format!("app {}: quotas changed", app.id));
            }
        }
    }
    Ok(out)
}

/// The nodes added and removed (by prefix); a node whose entry changed is refused (a restart,
/// or its removal then its addition, applies that).
fn node_changes(old: &Config, new: &Config) -> Result<Vec<String>, ConfigError> {
    let by_prefix = |c: &Config| -> HashMap<String, Node> {
        c.nodes
            .iter()
            .map(|n| (n.prefix.clone(), n.clone()))
            .collect()
    };
    let (before, after) = (by_prefix(old), by_prefix(new));
    let prefixes: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for prefix in prefixes {
        match (before.get(prefix), after.get(prefix)) {
            (None, Some(n)) => out.push(format!("node {} ({prefix}): added", n.name)),
            (Some(n), None) => out.push(format!("node {} ({prefix}): removed", n.name)),
            (Some(a), Some(b)) if a != b => {
                return Err(refused(format!(
                    "node {} ({prefix}) changed: only a restart applies a node's new settings \
                     (or remove it, then add it back)",
                    b.name
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `who: N keys added, M removed`, or nothing when the set of keys is the same.
fn key_changes(who: &str, old: Option<&OneOrMore>, new: Option<&OneOrMore>) -> Option<String> {
    let set = |k: Option<&OneOrMore>| -> BTreeSet<String> {
        k.map(|k| k.values().iter().map(|v| v.to_ascii_lowercase()).collect())
            .unwrap_or_default()
    };
    let (a, b) = (set(old), set(new));
    let (added, removed) = (b.difference(&a).count(), a.difference(&b).count());
    (added + removed > 0).then(|| format!("{who}: {added} key(s) added, {removed} removed"))
}

fn app_changes(a: &App, b: &App) -> Vec<String> {
    let id = &a.id;
    let mut out = Vec::new();
    if let Some(line) = key_changes(
        &format!("app {id}"),
        Some(&a.key_sha256),
        Some(&b.key_sha256),
    ) {
        out.push(line);
    }
    if a.webhook_url != b.webhook_url {
        out.push(format!(
            "app {id}: webhook_url {} -> {}",
            shown_url(a.webhook_url.as_deref()),
            shown_url(b.webhook_url.as_deref())
        ));
    }
    if a.webhook_secret != b.webhook_secret {
        let n = |s: &Option<OneOrMore>| s.as_ref().map_or(0, |s| s.values().len());
        out.push(format!(
            "app {id}: webhook secrets changed ({} -> {})",
            n(&a.webhook_secret),
            n(&b.webhook_secret)
        ));
    }
    for (what, same) in [
        ("dids", a.dids == b.dids),
        ("talking_events", a.talking_events == b.talking_events),
        ("dialout_hosts", a.dialout_hosts == b.dialout_hosts),
        ("dialout_numbers", a.dialout_numbers == b.dialout_numbers),
        ("caller_ids", a.caller_ids == b.caller_ids),
        ("empty_timeout", a.empty_timeout == b.empty_timeout),
        (
            "departure_timeout",
            a.departure_timeout == b.departure_timeout,
        ),
    ] {
        if !same {
            out.push(format!("app {id}: {what} changed"));
        }
    }
    out
}

/// A webhook URL as a change line shows it: its scheme, host and port. Its path, query and user
/// info are left out: they may be the credential (`https://hooks.example.com/services/<token>`,
/// `?token=…`, `https://user:password@…`).
fn shown_url(url: Option<&str>) -> String {
    let Some(url) = url else {
        return "(none)".into();
    };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "(not a URL)".into();
    };
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let rest = match parsed.path() != "/" || parsed.query().is_some() {
        true => "/…",
        false => "",
    };
    format!(
        "{}://{}{port}{rest}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default()
    )
}

/// A running dispatcher and what stops it.
struct Dispatcher {
    webhook: Webhook,
    stop: CancellationToken,
}

struct InForce {
    config: Config,
    generation: u64,
    webhooks: HashMap<AppId, Dispatcher>,
}

/// The controller's reloadable parts, with the configuration in force.
pub struct Running<S> {
    state: ApiState<S>,
    store: Arc<S>,
    /// Starts and stops the nodes a reload adds and removes.
    nodes: Arc<Spawner<S>>,
    stop: CancellationToken,
    /// Each app and whether it has a webhook: what housekeeping trims.
    apps: Arc<ArcSwap<Vec<(AppId, bool)>>>,
    // Held across the reload's steps: one reload at a time.
    now: tokio::sync::Mutex<InForce>,
}

/// Each configured app and whether it has a webhook URL.
pub fn hooked_apps(config: &Config) -> Vec<(AppId, bool)> {
    config
        .apps
        .iter()
        .filter_map(|a| Some((AppId::parse(&a.id).ok()?, a.webhook_url.is_some())))
        .collect()
}

impl<S: Store> Running<S> {
    /// Starts the webhook dispatchers of `config` and keeps what a reload changes.
    pub fn start(
        state: ApiState<S>,
        store: Arc<S>,
        nodes: Arc<Spawner<S>>,
        config: Config,
        stop: CancellationToken,
    ) -> Result<Arc<Running<S>>, super::StartError> {
        let mut webhooks = HashMap::new();
        for hook in config.webhook_dispatchers()? {
            let app = hook.app.clone();
            webhooks.insert(app, Self::dispatcher(&store, hook, &stop)?);
        }
        let apps = Arc::new(ArcSwap::from_pointee(hooked_apps(&config)));
        crate::telemetry::config_loaded(1, unix_now());
        Ok(Arc::new(Running {
            state,
            store,
            nodes,
            stop,
            apps,
            now: tokio::sync::Mutex::new(InForce {
                config,
                generation: 1,
                webhooks,
            }),
        }))
    }

    fn dispatcher(
        store: &Arc<S>,
        hook: DispatcherConfig,
        stop: &CancellationToken,
    ) -> Result<Dispatcher, crate::webhook::dispatcher::DispatchError> {
        let stop = stop.child_token();
        let webhook = crate::webhook::start(store.clone(), hook, stop.clone())?;
        Ok(Dispatcher { webhook, stop })
    }

    /// The apps housekeeping trims, as the configuration in force names them.
    pub fn apps(&self) -> Arc<ArcSwap<Vec<(AppId, bool)>>> {
        self.apps.clone()
    }

    /// The generation in force (1 for the file read at start).
    pub async fn generation(&self) -> u64 {
        self.now.lock().await.generation
    }

    /// Puts `new` in force, or refuses it whole (the configuration in force stays); the
    /// changes made.
    pub async fn reload(&self, new: Config) -> Result<Vec<String>, ConfigError> {
        let result = self.try_reload(new).await;
        crate::telemetry::config_reload(result.is_ok());
        result
    }

    async fn try_reload(&self, new: Config) -> Result<Vec<String>, ConfigError> {
        let mut now = self.now.lock().await;
        let changed = changes(&now.config, &new)?;
        let keys = new.app_keys()?;
        let hooks = new.webhook_dispatchers()?;
        // Nodes: a removed one must host no live room (drain it first).
        let prefixes =
            |c: &Config| -> BTreeSet<String> { c.nodes.iter().map(|n| n.prefix.clone()).collect() };
        let (before, after) = (prefixes(&now.config), prefixes(&new));
        let removed: Vec<NodePrefix> = before
            .difference(&after)
            .filter_map(|p| NodePrefix::parse(p).ok())
            .collect();
        for node in &removed {
            let live =
                self.store.node_room_count(node).await.map_err(|e| {
                    refused(format!("node {node}: its rooms cannot be counted: {e}"))
                })?;
            if live > 0 {
                return Err(refused(format!(
                    "node {node} hosts {live} live room(s): drain it and let them end before \
                     removing it; the configuration in force stays"
                )));
            }
        }
        let added: Vec<crate::node::NodeConfig> = new
            .node_configs()
            .into_iter()
            .filter(|c| !before.contains(c.prefix.as_str()))
            .collect();
        // Every new dispatcher starts (or the reload is refused) before anything changes.
        let mut started: HashMap<AppId, Dispatcher> = HashMap::new();
        for hook in hooks.iter().filter(|h| !now.webhooks.contains_key(&h.app)) {
            match Self::dispatcher(&self.store, hook.clone(), &self.stop) {
                Ok(d) => {
                    started.insert(hook.app.clone(), d);
                }
                Err(e) => {
                    for d in started.values() {
                        d.stop.cancel();
                    }
                    return Err(refused(e.to_string()));
                }
            }
        }
        for hook in &hooks {
            if let Some(d) = now.webhooks.get(&hook.app)
                && let Err(e) = d.webhook.retarget(&hook.url, hook.signer.clone())
            {
                for d in started.values() {
                    d.stop.cancel();
                }
                return Err(refused(e.to_string()));
            }
        }
        // From here nothing fails: each part is swapped in one step.
        for node in &removed {
            self.nodes.remove(node);
        }
        for config in added {
            let prefix = config.prefix.clone();
            self.nodes.add(config);
            if let Ok(handle) = self.nodes.pool().get(&prefix) {
                super::watch_node(self.state.clone(), handle, self.stop.child_token());
            }
        }
        now.webhooks.retain(|app, d| {
            let kept = hooks.iter().any(|h| &h.app == app);
            if !kept {
                d.stop.cancel();
            }
            kept
        });
        now.webhooks.extend(started);
        self.state.set_keys(keys);
        self.state
            .limiter()
            .set(new.limits.global_rps, new.limits.global_burst);
        let rooms = self.state.rooms();
        rooms.set_cooldowns(new.cooldowns());
        rooms.set_quotas(new.quotas());
        rooms.set_stream_settings(new.streams.settings());
        rooms.directory().replace(&new.directory());
        self.apps.store(Arc::new(hooked_apps(&new)));
        now.config = new;
        now.generation += 1;
        crate::telemetry::config_loaded(now.generation, unix_now());
        Ok(changed)
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
    const K1: &str = "ff23fdeed2bd9e6807eb3e108d3138d4cfc606e938537a88dbf8773c2175859f";
    const K2: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn config(extra: &str) -> Config {
        Config::parse(&format!("{NODE}{extra}"), |_| None).unwrap()
    }

    #[test]
    fn a_change_to_what_is_read_at_start_is_refused() {
        let base = format!("[[apps]]\nid='a1'\nkey_sha256='{K1}'\n");
        let old = config(&base);
        for changed in [
            "[limits]\nrequests_in_flight_per_app=5\n",
            "[limits]\nheader_timeout_ms=500\n",
            "[playback]\nallow_private=true\n",
        ] {
            let new = config(&format!("{changed}{base}"));
            let refused = changes(&old, &new).map(|_| ()).unwrap_err().to_string();
            assert!(
                refused.contains("only with a restart"),
                "{changed}: {refused}"
            );
        }
        let reloadable = config(&format!(
            "[limits]\nnode_sessions_reserved_pct=20\n[quotas]\nlive_rooms=3\n{base}"
        ));
        let lines = changes(&old, &reloadable).unwrap().join("\n");
        assert!(lines.contains("[quotas]"), "{lines}");
    }

    #[test]
    fn changes_name_what_changed_and_never_a_key() {
        let old = config(&format!("[[apps]]\nid='a1'\nkey_sha256='{K1}'\n"));
        let new = config(&format!(
            "[limits]\nglobal_rps=5.0\n[[apps]]\nid='a1'\nkey_sha256=['{K1}','{K2}']\ndids=['100']\ncaller_ids=['+1555*']\n\
             [[apps]]\nid='a2'\nkey_sha256='{K2}'\n"
        ));
        let lines = changes(&old, &new).unwrap();
        let text = lines.join("\n");
        assert!(text.contains("app a1: 1 key(s) added, 0 removed"), "{text}");
        assert!(text.contains("app a1: dids changed"), "{text}");
        assert!(text.contains("app a1: caller_ids changed"), "{text}");
        assert!(text.contains("app a2: added"), "{text}");
        assert!(text.contains("[limits]"), "{text}");
        assert!(!text.contains(K1) && !text.contains(K2), "{text}");
        assert!(changes(&old, &old).unwrap().is_empty());
    }

    #[test]
    fn a_changed_webhook_url_is_shown_without_what_may_be_its_credential() {
        let hook = |url: &str| {
            config(&format!(
                "[[apps]]\nid='a1'\nkey_sha256='{K1}'\nwebhook_url='{url}'\n\
                 webhook_secret='whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE='\n"
            ))
        };
        let old = hook("https://hooks.example.com/services/T0KEN1");
        let new = hook("https://user:pa55@other.example.com:8443/?token=T0KEN2");
        let text = changes(&old, &new).unwrap().join("\n");
        assert_eq!(
            text,
            "app a1: webhook_url https://hooks.example.com/… -> https://other.example.com:8443/…"
        );
        assert_eq!(shown_url(Some("http://h.example/")), "http://h.example");
        assert_eq!(shown_url(None), "(none)");
    }

    #[test]
    fn what_only_a_restart_applies_is_refused_by_name() {
        let old = config("");
        let moved = Config::parse(
            &format!("listen='127.0.0.1:9999'\n{NODE}[[nodes]]\nname='b'\nprefix='bcdef'\nesl='y:1'\npassword='p'\n"),
            |_| None,
        )
        .unwrap();
        let err = changes(&old, &moved).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
        let scraped = Config {
            metrics_listen: Some("127.0.0.1:9090".parse().unwrap()),
            ..config("")
        };
        let err = changes(&old, &scraped).unwrap_err().to_string();
        assert!(err.contains("metrics_listen"), "{err}");
        let added = Config::parse(
            &format!("{NODE}[[nodes]]\nname='b'\nprefix='bcdef'\nesl='y:1'\npassword='p'\n"),
            |_| None,
        )
        .unwrap();
        let lines = changes(&old, &added).unwrap();
        assert_eq!(lines, ["node b (bcdef): added"]);
        assert_eq!(changes(&added, &old).unwrap(), ["node b (bcdef): removed"]);
        let mut other = config("");
        other.nodes[0].esl = "z:2".into();
        let err = changes(&config(""), &other).unwrap_err().to_string();
        assert!(err.contains("node a (abcde) changed"), "{err}");
    }
}
