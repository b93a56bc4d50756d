//! Where the master is, as the sentinels' newest configuration says (issue 57).
//!
//! Views lag one another: just after a failover a sentinel that has not heard of it yet still
//! names the old master, and an old master that was paused and wakes up still takes itself for
//! one until the sentinels turn it into a replica, seconds later. Asked one sentinel at a time
//! and checked by the named server's own `ROLE` (as redis-rs's `Sentinel::async_master_for`
//! does), a process can move its connections back to that old master and write to two masters;
//! and while the old master is paused, that `ROLE` check waits, with no time limit, until it
//! wakes up, holding up the move to the new master it asked for. So every sentinel is asked at
//! once (`SENTINEL MASTER <name>`, each within a second), and the answer with the greatest
//! configuration epoch wins: every failover makes a greater one. A process never goes back to a
//! master of an older epoch than one it was told of (`Newest`), so every connection of the
//! store (the shared one, the room cache's, the replication check's, the outbox bells') asks
//! here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::RedisResult;

/// How long one sentinel may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// A master as one sentinel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    /// The sentinel's configuration epoch for the master (greater after each failover).
    pub epoch: u64,
    pub host: String,
    pub port: u16,
}

impl Named {
    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The newest master this process has been told of (see [`Newest::choose`]).
#[derive(Debug, Default)]
pub(crate) struct Newest(Mutex<Option<Chosen>>);

#[derive(Debug, Clone)]
struct Chosen {
    named: Named,
    /// The address left within this epoch (the failover's old master), never taken again at it.
    left: Option<String>,
}

impl Newest {
    /// The master to use after the sentinels' `answers`. A greater epoch than the one in use
    /// wins; an older one is a sentinel that has not heard yet, and is ignored. Within one epoch
    /// the address changes once: the sentinel leading a failover reports the new epoch with
    /// the old master's address until its failover ends, then the promoted replica's. So at the
    /// epoch in use another address than the one in use is that move, taken once; the address
    /// left is never taken again at that epoch.
    fn choose(&self, answers: impl IntoIterator<Item = Named>) -> Option<Named> {
        let answers: Vec<Named> = answers.into_iter().collect();
        let mut chosen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(top) = answers.iter().map(|n| n.epoch).max() else {
            return chosen.as_ref().map(|c| c.named.clone());
        };
        let at_top = answers.iter().filter(|n| n.epoch == top);
        let next = match chosen.as_ref() {
            None => answers.iter().find(|n| n.epoch == top).map(|n| Chosen {
                named: n.clone(),
                left: None,
            }),
            Some(c) if top < c.named.epoch => None,
            Some(c) => {
                let current = c.named.address();
                let left = if top > c.named.epoch {
                    None
                } else {
                    c.left.clone()
                };
                let moved = at_top
                    .clone()
                    .find(|n| n.address() != current && Some(n.address()) != left);
                match moved {
                    Some(n) => Some(Chosen {
                        named: n.clone(),
                        left: Some(current),
                    }),
                    // The epoch grows with the address unchanged (a failover under way).
                    None if top > c.named.epoch
                        && at_top.clone().any(|n| n.address() == current) =>
                    {
                        Some(Chosen {
                            named: Named {
                                epoch: top,
                                ..c.named.clone()
                            },
                            left: None,
                        })
                    }
                    None => None,
                }
            }
        };
        if let Some(next) = next {
            *chosen = Some(next);
        }
        chosen.as_ref().map(|c| c.named.clone())
    }
}

/// Asks every sentinel where `master` is: the newest answer (see the module).
pub(crate) async fn ask(sentinels: &[String], master: &str, newest: &Newest) -> RedisResult<Named> {
    let answers =
        futures_util::future::join_all(sentinels.iter().map(|s| ask_one(s, master))).await;
    let mut last_error = None;
    let mut named = Vec::with_capacity(answers.len());
    for answer in answers {
        match answer {
            Ok(n) => named.push(n),
            Err(e) => last_error = Some(e),
        }
    }
    if named.is_empty() {
        return Err(last_error.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::IoError, "no sentinel answered"))
        }));
    }
    tracing::debug!(?named, "Redis Sentinel: the sentinels' answers");
    newest.choose(named).ok_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::IoError, "no sentinel named a master"))
    })
}

async fn ask_one(sentinel: &str, master: &str) -> RedisResult<Named> {
    let asked = async {
        let mut conn = redis::Client::open(sentinel)?
            .get_multiplexed_async_connection()
            .await?;
        let fields: HashMap<String, String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(master)
            .query_async(&mut conn)
            .await?;
        Ok::<_, redis::RedisError>(fields)
    };
    let fields = tokio::time::timeout(ASK_TIMEOUT, asked)
        .await
        .map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::IoError, "sentinel timed out"))
        })??;
    parse(&fields).ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::ResponseError,
            "sentinel's SENTINEL MASTER answer without ip, port or config-epoch",
        ))
    })
}

fn parse(fields: &HashMap<String, String>) -> Option<Named> {
    Some(Named {
        epoch: fields.get("config-epoch")?.parse().ok()?,
        host: fields.get("ip")?.clone(),
        port: fields.get("port")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(epoch: u64, port: u16) -> Named {
        Named {
            epoch,
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn the_newest_epoch_wins_and_an_older_one_never_comes_back() {
        let newest = Newest::default();
        assert_eq!(newest.choose([named(0, 6379)]), Some(named(0, 6379)));
        // One sentinel has not heard of the failover yet.
        assert_eq!(
            newest.choose([named(0, 6379), named(1, 6380)]),
            Some(named(1, 6380))
        );
        // Later, only stale sentinels answer: the newer master stays.
        assert_eq!(newest.choose([named(0, 6379)]), Some(named(1, 6380)));
        assert_eq!(newest.choose([]), Some(named(1, 6380)));
        assert_eq!(newest.choose([named(2, 6379)]), Some(named(2, 6379)));
    }

    #[test]
    fn a_failover_under_way_moves_once_at_its_epoch_and_never_back() {
        let newest = Newest::default();
        assert_eq!(newest.choose([named(1, 6380)]), Some(named(1, 6380)));
        // The leader of the next failover reports its epoch with the old master's address
        // (seen on redis 7.0: the master just killed, its replica being promoted).
        assert_eq!(
            newest.choose([named(1, 6380), named(2, 6380), named(1, 6380)]),
            Some(named(2, 6380))
        );
        // Its failover ends: the promoted replica, at the same epoch.
        assert_eq!(
            newest.choose([named(2, 6379), named(2, 6380), named(1, 6380)]),
            Some(named(2, 6379))
        );
        // A sentinel still in the window does not take it back.
        assert_eq!(newest.choose([named(2, 6380)]), Some(named(2, 6379)));
        assert_eq!(newest.choose([named(1, 6380)]), Some(named(2, 6379)));
    }

    #[test]
    fn a_sentinels_answer_reads_as_a_master() {
        let fields: HashMap<String, String> = [
            ("name", "switchyard"),
            ("ip", "10.0.0.2"),
            ("port", "6380"),
            ("flags", "master"),
            ("config-epoch", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            parse(&fields),
            Some(Named {
                epoch: 7,
                host: "10.0.0.2".into(),
                port: 6380
            })
        );
        assert_eq!(parse(&HashMap::new()), None);
    }
}
