//! A Redis Cluster's masters, for the room cache: which master serves each slot (asked of the
//! cluster with `CLUSTER SLOTS`, again whenever [`Masters::forget_slots`] was called: a master
//! lost, a `MOVED` answer), and one tracked [`Link`] per master.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use redis::{ConnectionInfo, RedisError};

use super::Entries;
use super::tracked::Link;
use crate::store::redis::slot_map::{Range, first_map, no_master, seeds};
use crate::store::redis::slot_of_key;

pub(super) struct Masters {
    /// The nodes the URL names: where the slot map is asked first.
    seeds: Vec<ConnectionInfo>,
    /// Each range's master's link (a lookup per command clones no address); empty: to be asked.
    slots: RwLock<Vec<Range<Arc<Link>>>>,
    /// Every master's link, by address (`host:port`): a master keeps its link across maps.
    links: Mutex<HashMap<String, Arc<Link>>>,
    /// One question to the cluster at a time.
    asking: tokio::sync::Mutex<()>,
}

impl Masters {
    pub(super) fn new(nodes: &[String]) -> Result<Masters, RedisError> {
        Ok(Masters {
            seeds: seeds(nodes)?,
            slots: RwLock::default(),
            links: Mutex::default(),
            asking: tokio::sync::Mutex::new(()),
        })
    }

    /// Connects to every master (tracking on): an error when none can be reached, or one refuses
    /// tracking.
    pub(super) async fn connect_all(&self, entries: &Entries) -> Result<(), RedisError> {
        Box::pin(self.ask()).await?;
        let masters: Vec<Arc<Link>> = {
            let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
            let mut seen: Vec<Arc<Link>> = Vec::new();
            for (_, _, link) in slots.iter() {
                if !seen.iter().any(|s| Arc::ptr_eq(s, link)) {
                    seen.push(link.clone());
                }
            }
            seen
        };
        // A master that cannot be reached (dead, its replica not promoted yet) does not keep
        // the others from being used: its slots fail until the map, asked again, names another.
        let mut failed = None;
        let mut connected = false;
        for link in masters {
            match link.conn(entries).await {
                Ok(_) => connected = true,
                Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() => {
                    failed = Some(e)
                }
                // A master that refuses tracking: the cache cannot be kept (the caller says so).
                Err(e) => return Err(e),
            }
        }
        match failed {
            Some(e) if !connected => Err(e),
            Some(_) => {
                self.forget_slots();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Positions of `keys` grouped by the master serving them, each group in order.
    pub(super) async fn group(&self, keys: &[&str]) -> Result<Vec<Vec<usize>>, RedisError> {
        let mut groups: Vec<(Arc<Link>, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let link = self.link(key).await?;
            match groups.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &link)) {
                Some((_, group)) => group.push(i),
                None => groups.push((link, vec![i])),
            }
        }
        Ok(groups.into_iter().map(|(_, group)| group).collect())
    }

    /// Has the slot map asked again before the next command.
    pub(super) fn forget_slots(&self) {
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The tracked link to the master serving `key`'s slot.
    pub(super) async fn link(&self, key: &str) -> Result<Arc<Link>, RedisError> {
        let slot = slot_of_key(key);
        if let Some(link) = self.lookup(slot) {
            return Ok(link);
        }
        Box::pin(self.ask()).await?;
        self.lookup(slot).ok_or_else(|| {
            // A map taken mid-failover: asked again next time.
            self.forget_slots();
            no_master(format!("no master serves slot {slot}"))
        })
    }

    fn lookup(&self, slot: u32) -> Option<Arc<Link>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, link)| link.clone())
    }

    fn link_to(&self, info: ConnectionInfo) -> Result<Arc<Link>, RedisError> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let addr = info.addr.to_string();
        if let Some(link) = links.get(&addr) {
            return Ok(link.clone());
        }
        let link = Arc::new(Link::new(info)?);
        links.insert(addr, link.clone());
        Ok(link)
    }

    /// Asks the cluster for its slot map (the seeds first, then the masters known), unless
    /// another caller just did. Callers box it: its future (connects, a command) would
    /// otherwise nest into every room read's and write's, past what the compiler lays out in a
    /// caller's async block (`queries overflow the depth limit` in `benches/room_apply.rs`).
    async fn ask(&self) -> Result<(), RedisError> {
        let _one = self.asking.lock().await;
        if !self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return Ok(());
        }
        let mut candidates = self.seeds.clone();
        {
            let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            for link in links.values() {
                let info = link.info();
                if !candidates.iter().any(|c| c.addr == info.addr) {
                    candidates.push(info);
                }
            }
        }
        let map = first_map(&candidates)
            .await?
            .into_iter()
            .map(|(first, last, info)| Ok((first, last, self.link_to(info)?)))
            .collect::<Result<_, RedisError>>()?;
        *self.slots.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }
}
