//! Whether what the master holds is on its replicas (issue 35). Replication is asynchronous: a
//! failover promotes a replica, and what the old master had not passed to it is lost. So what
//! must survive a failover is acted on only once a replica has it: a webhook is sent for an
//! outbox entry, and a node's applied position is trusted, only after `WAIT` says so.
//!
//! `WAIT n timeout` waits until `n` replicas have every write *this connection* made, so each
//! check makes a small write of its own (`INCR sy:replicated`) after whatever it vouches for
//! was read: the write's offset is past everything the master had then, whoever wrote it. The
//! check has its own connection, because `WAIT` blocks the connection it runs on (up to its
//! timeout when no replica answers) and the shared connection carries everything else. It moves
//! with the master: after a sentinel's announcement, or an error, it asks where the master is.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::store::conn_slot::ConnSlot;

use super::failover::Target;
use super::switches::Switches;

/// How long making the check's connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The key each check increments (any write would do).
const KEY: &str = "sy:replicated";

pub(super) struct Replication {
    target: Arc<Target>,
    /// How many replicas must have a write before it counts as safe.
    wanted: usize,
    /// How long one check waits for them.
    timeout: Duration,
    switches: Arc<Switches>,
    /// The check's connection, and the count of the sentinels' switches it was made after.
    conn: ConnSlot<(u64, MultiplexedConnection)>,
}

impl Replication {
    pub(super) fn new(
        target: Arc<Target>,
        wanted: usize,
        timeout: Duration,
        switches: Arc<Switches>,
    ) -> Replication {
        Replication {
            target,
            wanted,
            timeout,
            switches,
            conn: ConnSlot::new(),
        }
    }

    pub(super) fn wanted(&self) -> usize {
        self.wanted
    }

    /// A connection to the master as the sentinels name it now, or `None` when they named
    /// another one while it was being made (a connection made to a paused master completes
    /// when it wakes up, after the switch: a write there would reach the old master).
    async fn connection(&self) -> redis::RedisResult<Option<MultiplexedConnection>> {
        let switches = *self.switches.borrow();
        let made_after = |(seen, _): &(u64, MultiplexedConnection)| *seen == switches;
        let (made, c) = self
            .conn
            .get_or_connect(made_after, || async {
                let client = self.target.master().await?;
                // A paused server accepts the connection and answers nothing: bounded, or the
                // check (and the fleet's renewals behind it) would wait for it to wake up.
                let c = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    client.get_multiplexed_async_connection(),
                )
                .await
                .map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::IoError, "connecting timed out"))
                })??;
                Ok::<_, redis::RedisError>((switches, c))
            })
            .await?;
        if made != *self.switches.borrow() {
            self.conn.clear();
            return Ok(None);
        }
        Ok(Some(c))
    }

    /// Whether `wanted` replicas have everything the master held when this was called
    /// (`Ok(false)`: not within the timeout).
    pub(super) async fn confirm(&self) -> redis::RedisResult<bool> {
        let Some(mut conn) = self.connection().await? else {
            return Ok(false);
        };
        let answer: redis::RedisResult<(i64, i64)> = redis::pipe()
            .cmd("INCR")
            .arg(KEY)
            .cmd("WAIT")
            .arg(self.wanted)
            .arg(self.timeout.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await;
        match answer {
            Ok((_, replicas)) => {
                let confirmed = usize::try_from(replicas).unwrap_or(0) >= self.wanted;
                crate::telemetry::store_replicas(replicas);
                Ok(confirmed)
            }
            Err(e) => {
                // Asked again next time: the master may have moved.
                self.conn.clear();
                Err(e)
            }
        }
    }
}
