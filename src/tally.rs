//! Places held per key, each taken under a bound and given back when dropped: the per-app
//! shares of the API's admission (`api/admission.rs`) and the per-app counts of the room
//! service's quotas (`rooms/quotas.rs`). A std mutex, never held across an `.await`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// The places held now, per key; clones share them.
#[derive(Debug)]
pub struct Tally<K> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K> Default for Tally<K> {
    fn default() -> Tally<K> {
        Tally {
            counts: Arc::default(),
        }
    }
}

impl<K> Clone for Tally<K> {
    fn clone(&self) -> Tally<K> {
        Tally {
            counts: self.counts.clone(),
        }
    }
}

/// One place of a key's, given back when dropped.
#[derive(Debug)]
pub struct Place<K: Eq + Hash> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Tally<K> {
    /// One more place of `key`'s, unless it holds `most` already, counting `already` more
    /// held elsewhere (0 `most`: no bound).
    pub fn take(&self, key: &K, most: usize, already: usize) -> Option<Place<K>> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_default();
        if most > 0 && *n + already >= most {
            return None;
        }
        *n += 1;
        Some(Place {
            counts: self.counts.clone(),
            key: key.clone(),
        })
    }
}

impl<K: Eq + Hash> Drop for Place<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_bounded_with_what_is_held_elsewhere_and_freed_on_drop() {
        let tally = Tally::default();
        let first = tally.take(&"a", 3, 1);
        let second = tally.take(&"a", 3, 1);
        assert!(first.is_some() && second.is_some());
        assert!(tally.take(&"a", 3, 1).is_none(), "2 here + 1 elsewhere = 3");
        assert!(tally.take(&"b", 3, 0).is_some(), "b's places are its own");
        drop(first);
        assert!(tally.take(&"a", 3, 1).is_some());
        assert!(tally.take(&"a", 0, 100).is_some(), "0: no bound");
    }
}
