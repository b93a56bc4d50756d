//! Entries of an app's outbox and positions in it.
//!
//! An app's outbox may be kept in several streams (one per shard of a Redis store that spreads
//! an app over a cluster, see `keys.rs`); reads merge them. An entry's id is stable — the
//! stream's own id (`<ms>-<seq>`) in shard 0, `<ms>-<seq>@<k>` in shard k — and is what a
//! webhook's message id and a dead letter name. A position is where a reader stands in every
//! shard at once: the last entry taken from each, comma-separated in shard order; so a reader
//! that resumes from a position misses nothing, whatever the shards' clocks. With one shard an
//! entry's id and the position after it are the same string (`<ms>-<seq>`), as they always were.
//! A position of one component stands for every shard (a time, as `after=now` and the
//! retention cut-off give, or a position written before an app had more than one shard).

use std::fmt;

use super::outbox_order;
use crate::conference::DomainEvent;

/// One entry of an app's outbox, as a read returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The entry's stable id.
    pub id: String,
    /// The position just after this entry (where a reader that took it stands).
    pub position: String,
    pub event: DomainEvent,
}

/// A position in an app's outbox: per shard, the last entry read, as (ms, seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position(Vec<(u64, u64)>);

impl Position {
    /// `None` when `s` is not a position (nor an entry id of shard 0).
    pub fn parse(s: &str) -> Option<Position> {
        let parts: Option<Vec<(u64, u64)>> = s.split(',').map(outbox_order).collect();
        parts.filter(|p| !p.is_empty()).map(Position)
    }

    /// The start of every shard.
    pub fn start(shards: usize) -> Position {
        Position(vec![(0, 0); shards.max(1)])
    }

    /// Where the position stands in `shard`.
    pub fn of(&self, shard: usize) -> (u64, u64) {
        match self.0.as_slice() {
            [one] => *one,
            parts => parts.get(shard).copied().unwrap_or((0, 0)),
        }
    }

    /// This position over `shards` shards (each where it stands).
    pub fn spread(&self, shards: usize) -> Position {
        Position((0..shards.max(1)).map(|k| self.of(k)).collect())
    }

    /// Moves the position in `shard` to `at`.
    pub fn set(&mut self, shard: usize, at: (u64, u64)) {
        if let Some(part) = self.0.get_mut(shard) {
            *part = at;
        }
    }

    /// The earlier of the two in each shard.
    pub fn min(&self, other: &Position) -> Position {
        if self.0.len() == 1 && other.0.len() == 1 {
            return Position(vec![self.0[0].min(other.0[0])]);
        }
        let n = self.0.len().max(other.0.len());
        Position((0..n).map(|k| self.of(k).min(other.of(k))).collect())
    }

    /// The later of the two in each shard.
    pub fn max(&self, other: &Position) -> Position {
        if self.0.len() == 1 && other.0.len() == 1 {
            return Position(vec![self.0[0].max(other.0[0])]);
        }
        let n = self.0.len().max(other.0.len());
        Position((0..n).map(|k| self.of(k).max(other.of(k))).collect())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (ms, seq)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{ms}-{seq}")?;
        }
        Ok(())
    }
}

/// The id of the entry `at` of shard `shard`.
pub fn entry_id(shard: usize, at: (u64, u64)) -> String {
    match shard {
        0 => format!("{}-{}", at.0, at.1),
        k => format!("{}-{}@{k}", at.0, at.1),
    }
}

/// An entry id's shard and place in it; `None` if malformed.
pub fn entry_order(id: &str) -> Option<(usize, (u64, u64))> {
    match id.split_once('@') {
        None => Some((0, outbox_order(id)?)),
        Some((at, shard)) => Some((shard.parse().ok()?, outbox_order(at)?)),
    }
}

/// The app's outbox entries after `after` that a failover cannot take back: read, then
/// confirmed on the replicas the store waits for ([`super::Store::replicated`]). An entry the
/// replicas do not have yet is not handed out (a webhook sent for it, or a feed page showing
/// it, could announce a change the store then loses, and its room's `seq` be used again): the
/// store answers unavailable, and the reader asks again.
pub async fn replicated_outbox<S: super::Store>(
    store: &S,
    app: &crate::conference::AppId,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<OutboxEntry>, super::StoreError> {
    let entries = store.outbox(app, after, limit).await?;
    if !entries.is_empty() && !store.replicated().await? {
        return Err(super::StoreError::Unavailable(
            "the replicas do not have the newest outbox entries yet".into(),
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_positions_are_entry_ids() {
        let p = Position::parse("1700000000000-3").unwrap_or_else(|| panic!("parse"));
        assert_eq!(p.to_string(), "1700000000000-3");
        assert_eq!(entry_id(0, (1_700_000_000_000, 3)), "1700000000000-3");
        assert_eq!(
            p.spread(3).to_string(),
            "1700000000000-3,1700000000000-3,1700000000000-3"
        );
    }

    #[test]
    fn positions_compare_shard_by_shard() {
        let a = Position::parse("5-0,9-1,0-0").unwrap_or_else(|| panic!("parse"));
        let b = Position::parse("7-0").unwrap_or_else(|| panic!("parse"));
        assert_eq!(a.min(&b).to_string(), "5-0,7-0,0-0");
        assert_eq!(a.max(&b).to_string(), "7-0,9-1,7-0");
        assert_eq!(
            b.max(&Position::parse("7-2").unwrap_or_else(|| panic!("parse")))
                .to_string(),
            "7-2"
        );
        assert_eq!(entry_order("9-1@1"), Some((1, (9, 1))));
        assert_eq!(entry_order("9-1"), Some((0, (9, 1))));
        assert!(Position::parse("9-1@1").is_none());
        assert!(Position::parse("").is_none());
        assert!(Position::parse("1-2,x").is_none());
    }
}
