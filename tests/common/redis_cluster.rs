//! A real three-master Redis Cluster for one test: three `redis-server --cluster-enabled yes`
//! on free ports ([`RedisServer`], stopped by pid when dropped), joined by
//! `redis-cli --cluster create`, ready once every node says `cluster_state:ok`.

use std::process::Command;
use std::time::{Duration, Instant};

use super::redis_server::RedisServer;

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-cli ({e}): install it with `apt-get install redis-server`")
        });
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::with_replicas(0)
    }

    /// Three masters with `replicas` replicas each (`--cluster-replicas`).
    pub fn with_replicas(replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                // The cluster bus port is the client port + 10,000 unless named, which fails
                // for a free port above 55,535: name a free one.
                let bus = super::ports::tcp().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    // A replica's first sync at once (the default waits 5 s for more replicas).
                    "--repl-diskless-sync-delay",
                    "0",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        let replicas = replicas.to_string();
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        let created = cli(nodes[0].port, &args);
        assert!(
            created.contains("All 16384 slots covered"),
            "redis-cli --cluster create: {created}"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !cli(node.port, &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
            // A replica that never synced cannot take over (its data would be too old).
            loop {
                let info = cli(node.port, &["info", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(Instant::now() < deadline, "a replica never synced: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// The store's URL for it.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }

    /// Moves the slot of `key` (with every key in it) to the next node, as `redis-cli
    /// --cluster reshard` does: importing and migrating marks, `MIGRATE` of its keys, the new
    /// owner told to every node.
    pub fn move_slot_of(&self, key: &str) {
        let port = |i: usize| self.nodes[i].port;
        let slot = cli(port(0), &["CLUSTER", "KEYSLOT", key]).trim().to_owned();
        let from = self.master_of(key).expect("a node serves the key's slot");
        let to = (from + 1) % self.nodes.len();
        let id = |i: usize| cli(port(i), &["CLUSTER", "MYID"]).trim().to_owned();
        let (from_id, to_id) = (id(from), id(to));
        let ok = |out: String| assert!(out.contains("OK"), "{out}");
        ok(cli(
            port(to),
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id],
        ));
        ok(cli(
            port(from),
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id],
        ));
        let to_port = port(to).to_string();
        loop {
            let listed = cli(port(from), &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
            let keys: Vec<&str> = listed.lines().filter(|k| !k.trim().is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            ok(cli(port(from), &args));
        }
        for i in 0..self.nodes.len() {
            ok(cli(port(i), &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]));
        }
    }

    /// The node that serves `key`'s slot now (a replica or another master answers `MOVED`, a
    /// cluster that lost the slot's master `CLUSTERDOWN`, a killed node nothing).
    pub fn master_of(&self, key: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            self.nodes[i].pid().is_some() && {
                let answer = cli(self.nodes[i].port, &["EXISTS", key]);
                matches!(answer.trim(), "0" | "1")
            }
        })
    }

    /// The key a pattern names, on whichever node holds it.
    pub fn find_key(&self, pattern: &str) -> Option<String> {
        self.nodes.iter().find_map(|n| {
            let found = cli(n.port, &["--scan", "--pattern", pattern]);
            found
                .lines()
                .map(str::trim)
                .find(|k| !k.is_empty())
                .map(str::to_owned)
        })
    }

    /// Waits until node `i`'s replicas have everything it has (replication is asynchronous: a
    /// replica promoted before that lacks the latest writes).
    pub fn wait_replicated(&self, i: usize) {
        let field = |info: &str, name: &str| -> Option<u64> {
            info.split(['\n', ','])
                .find_map(|kv| kv.trim().strip_prefix(name)?.parse().ok())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = cli(self.nodes[i].port, &["INFO", "replication"]);
            let master = field(&info, "master_repl_offset:");
            let replica = field(&info, "offset=");
            if master.is_some() && replica >= master {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas never caught up: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A planned failover of replica `i` (`CLUSTER FAILOVER`: its master pauses its writers
    /// until `i` has every write, then `i` is elected and the two swap roles), done once `i`
    /// serves `key`. Redis gives a manual failover 5 s (`CLUSTER_MF_TIMEOUT`) and drops it
    /// silently if the election has not ended by then, and a replica starts another election
    /// only 4 node timeouts after its last: on a loaded machine the first try can be lost (CI
    /// saw it), so it is asked again after 10 s, within `within`. It is asked only once every
    /// master knows `i` as a replica (one that does not denies its vote).
    pub async fn planned_failover(&self, i: usize, key: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let id = self.cli(i, &["CLUSTER", "MYID"]).trim().to_owned();
        let failed = |what: &str| -> ! {
            let logs: Vec<String> = (0..self.nodes.len())
                .map(|n| format!("node {n}:\n{}", self.nodes[n].log_tail(15)))
                .collect();
            panic!("{what}\n{}\n{}", self.describe(i), logs.join("\n"))
        };
        let masters: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].pid().is_some())
            .filter(|&n| self.cli(n, &["ROLE"]).starts_with("master"))
            .collect();
        while !masters.iter().all(|&n| {
            self.describe(n)
                .lines()
                .any(|l| l.starts_with(&id) && l.contains("slave"))
        }) {
            if Instant::now() > deadline {
                failed("the masters never all knew the replica");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let answer = self.cli(i, &["CLUSTER", "FAILOVER"]);
            assert!(answer.contains("OK"), "CLUSTER FAILOVER: {answer}");
            let retry = Instant::now() + Duration::from_secs(10);
            while Instant::now() < retry {
                if self.master_of(key) == Some(i) {
                    return;
                }
                if Instant::now() > deadline {
                    failed("the replica never took over");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            eprintln!("CLUSTER FAILOVER of node {i}: not done after 10 s; asked again");
        }
    }

    /// `redis-cli` against node `i`: its output.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        cli(self.nodes[i].port, args)
    }

    /// What node `i` says of the cluster (`CLUSTER NODES`).
    pub fn describe(&self, i: usize) -> String {
        cli(self.nodes[i].port, &["CLUSTER", "NODES"])
    }
}
