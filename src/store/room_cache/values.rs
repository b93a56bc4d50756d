//! Small values read on the tracked connection beside the rooms — a session's record and the
//! room it is in — kept until Redis says they changed, as the rooms are (the same tokens, the
//! same pushes). Every member command reads both, and they change only when the session joins,
//! leaves or ends.
//!
//! A value this process writes on the tracked connection itself draws no push (NOLOOP), and
//! Redis stops tracking it: the writer forgets it ([`Entries::forget_values`]) once the write is
//! answered. Written anywhere else (another connection of this process, another controller, an
//! expiry), the push removes it.

use super::{Access, Entries};

/// A value read, or being read.
pub(super) enum Kept {
    /// Read in flight; its answer is kept if the key still holds this token.
    Pending(u64),
    /// Read back right after this process wrote it, in the same pipeline: reads begun meanwhile
    /// are not kept (they may be sent before the write: see `room_cache.rs`).
    Writing(u64),
    /// Tracked: `None` is a key that does not exist (Redis tracks those too).
    Ready(Option<String>),
}

impl Entries {
    /// The value at `key`, if kept: `Some(None)` for a key known not to exist.
    pub fn value(&self, key: &str) -> Option<Option<String>> {
        match self.lock().values.get(key)? {
            Kept::Ready(v) => Some(v.clone()),
            Kept::Pending(_) | Kept::Writing(_) => None,
        }
    }

    /// Marks `key` as being read, or as written by this process and read back after the write
    /// (before it is sent); returns the token [`Entries::fill_value`] needs, one that keeps
    /// nothing for a read while this process writes the key.
    pub fn begin_value(&self, key: &str, access: Access) -> u64 {
        let mut state = self.lock();
        let kept = match access {
            Access::Read if matches!(state.values.get(key), Some(Kept::Writing(_))) => {
                return super::NOT_KEPT;
            }
            Access::Read => Kept::Pending,
            Access::Write => Kept::Writing,
        };
        let token = state.token();
        super::make_room(&mut state.values, self.capacity, key);
        state.values.insert(key.to_owned(), kept(token));
        token
    }

    /// Keeps `value` for `key` if nothing changed it since [`Entries::begin_value`].
    pub fn fill_value(&self, key: &str, token: u64, value: Option<String>) {
        let mut state = self.lock();
        if let Some(kept) = state.values.get_mut(key)
            && matches!(kept, Kept::Pending(t) | Kept::Writing(t) if *t == token)
        {
            *kept = Kept::Ready(value);
        }
    }

    /// Forgets the values at `keys` (this process wrote them, or their read failed).
    pub fn forget_values<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut state = self.lock();
        for key in keys {
            state.values.remove(key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_is_kept_unless_it_changed_meanwhile() {
        let entries = Entries::new(16);
        let token = entries.begin_value("k", Access::Read);
        assert_eq!(entries.value("k"), None, "in flight: not an answer");
        entries.fill_value("k", token, Some("room".into()));
        assert_eq!(entries.value("k"), Some(Some("room".into())));
        // Changed while a read was in flight: that read's answer is not kept.
        let token = entries.begin_value("k", Access::Read);
        entries.forget_values(["k"]);
        entries.fill_value("k", token, Some("old".into()));
        assert_eq!(entries.value("k"), None);
        // A key that does not exist is kept as such.
        let token = entries.begin_value("gone", Access::Read);
        entries.fill_value("gone", token, None);
        assert_eq!(entries.value("gone"), Some(None));
        entries.clear();
        assert_eq!(entries.value("gone"), None);
    }
}
