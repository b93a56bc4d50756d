//! A Redis server's own record of what it executed (`redis-cli monitor`): which client wrote
//! what, in the server's order and by its clock. Tests read it to see who wrote where (an
//! instance acting on a lease it lost, a write that reached an old master).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one Redis server executed, in order (`redis-cli monitor`): each command with when it
/// ran (Redis's clock, this machine's) and who sent it (a client address, or `lua` for a
/// script's own commands, which follow the script's call).
pub struct Monitor {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// One command a [`Monitor`] saw.
#[derive(Debug)]
pub struct Executed {
    pub at: SystemTime,
    /// The client that sent it (for a script's own commands, the script's caller).
    pub caller: String,
    /// A script's own command (the script's call came just before).
    pub scripted: bool,
    pub args: Vec<String>,
}

impl Monitor {
    pub fn start(port: u16) -> Monitor {
        let mut child = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "monitor"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-cli (Debian: apt-get install redis-tools)");
        let out = child.stdout.take().unwrap();
        let lines = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
        let into = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                into.lock().unwrap().push(line);
            }
        });
        Monitor { child, lines }
    }

    /// Everything executed so far, a script's commands attributed to its caller.
    pub fn executed(&self) -> Vec<Executed> {
        let mut out = Vec::new();
        let mut caller = String::new();
        for line in self.lines.lock().unwrap().iter() {
            // `1700000000.123456 [0 127.0.0.1:5000] "SET" "k" "v"`
            let Some((ts, rest)) = line.split_once(' ') else {
                continue;
            };
            let Ok(ts) = ts.parse::<f64>() else { continue };
            let Some((client, args)) = rest.split_once("] ") else {
                continue;
            };
            let client = client.trim_start_matches('[');
            let from = client.split_once(' ').map_or(client, |(_, c)| c);
            if from != "lua" {
                caller = from.to_owned();
            }
            let args: Vec<String> = args
                .trim_matches('"')
                .split("\" \"")
                .map(str::to_owned)
                .collect();
            out.push(Executed {
                at: UNIX_EPOCH + Duration::from_secs_f64(ts),
                caller: caller.clone(),
                scripted: from == "lua",
                args,
            });
        }
        out
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Executed {
    /// Whether it changes data (a script, or a write command), sent by a client (not a
    /// script's own command, not the replication or a sentinel's hello).
    pub fn is_clients_write(&self) -> bool {
        const WRITES: &[&str] = &[
            "EVAL", "EVALSHA", "SET", "DEL", "HSET", "HDEL", "XADD", "XTRIM", "SADD", "SREM",
            "ZADD", "ZREM", "INCR", "EXPIRE", "PEXPIRE", "RPUSH", "LTRIM",
        ];
        !self.scripted
            && self
                .args
                .first()
                .is_some_and(|c| WRITES.contains(&c.to_ascii_uppercase().as_str()))
    }
}
