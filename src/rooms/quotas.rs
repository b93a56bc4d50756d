//! Per-app quotas on what the shared media nodes hold for an app: its live rooms (each holds a
//! control leg on a node), the members a room may take, its dial-outs under way, its recordings
//! running. Past one, the app is answered 429 with the quota named, and nothing reaches a node;
//! other apps are unaffected. Replaced whole by a configuration reload.
//!
//! Live rooms and recordings are counted in the store (every instance of a fleet sees the
//! same count; creates racing on different instances may pass it by one each). Dial-outs under
//! way are counted by each instance, as they are placed from it. Members per room cap the
//! room's own `max_participants`, which joins and dial-outs already honour.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::ServiceError;
use crate::conference::AppId;

/// One app's quotas; 0 means no quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Rooms not ended.
    pub live_rooms: usize,
    /// Members one room may hold (a room's `max_participants` at most this).
    pub members_per_room: u64,
    /// Dial-outs placed from one instance and not yet answered or failed.
    pub dialouts_in_flight: usize,
    /// Rooms recording at once.
    pub recordings: usize,
    /// Live audio streams at once, across the app's rooms.
    pub streams: usize,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            live_rooms: 1000,
            members_per_room: 500,
            dialouts_in_flight: 100,
            recordings: 200,
            streams: 50,
        }
    }
}

/// An app's quotas in the configuration: each unset field is the default's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverride {
    pub live_rooms: Option<usize>,
    pub members_per_room: Option<u64>,
    pub dialouts_in_flight: Option<usize>,
    pub recordings: Option<usize>,
    pub streams: Option<usize>,
}

impl QuotaOverride {
    pub fn over(&self, base: Quota) -> Quota {
        Quota {
            live_rooms: self.live_rooms.unwrap_or(base.live_rooms),
            members_per_room: self.members_per_room.unwrap_or(base.members_per_room),
            dialouts_in_flight: self.dialouts_in_flight.unwrap_or(base.dialouts_in_flight),
            recordings: self.recordings.unwrap_or(base.recordings),
            streams: self.streams.unwrap_or(base.streams),
        }
    }
}

/// Every app's quotas, and the share of each node's sessions no new room or dial-out takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quotas {
    pub default: Quota,
    pub apps: HashMap<AppId, Quota>,
    /// Percent of a node's `max-sessions` kept for inbound calls and the joins of rooms
    /// already made (0: none kept, and the node's sessions are not asked).
    pub node_reserved_pct: u32,
}

impl Quotas {
    /// No quota at all (tests and benches that measure something else).
    pub fn none() -> Quotas {
        let zero = Quota {
            live_rooms: 0,
            members_per_room: 0,
            dialouts_in_flight: 0,
            recordings: 0,
            streams: 0,
        };
        Quotas {
            default: zero,
            apps: HashMap::new(),
            node_reserved_pct: 0,
        }
    }

    pub fn of(&self, app: &AppId) -> Quota {
        self.apps.get(app).copied().unwrap_or(self.default)
    }
}

/// Which quota an app has reached; its 429 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    LiveRooms(usize),
    MembersPerRoom(u64),
    DialoutsInFlight(usize),
    Recordings(usize),
    Streams(usize),
}

impl Reached {
    pub fn name(self) -> &'static str {
        match self {
            Reached::LiveRooms(_) => "live_rooms",
            Reached::MembersPerRoom(_) => "members_per_room",
            Reached::DialoutsInFlight(_) => "dialouts_in_flight",
            Reached::Recordings(_) => "recordings",
            Reached::Streams(_) => "streams",
        }
    }

    pub fn most(self) -> u64 {
        match self {
            Reached::LiveRooms(n)
            | Reached::DialoutsInFlight(n)
            | Reached::Recordings(n)
            | Reached::Streams(n) => n as u64,
            Reached::MembersPerRoom(n) => n,
        }
    }
}

impl From<Reached> for ServiceError {
    fn from(r: Reached) -> ServiceError {
        ServiceError::Quota(r)
    }
}

/// Things of an app's under way in this process (rooms being created, dial-outs placed),
/// counted until their [`Held`] drops.
pub type UnderWay = crate::tally::Tally<AppId>;

/// One thing under way; uncounted when dropped.
pub type Held = crate::tally::Place<AppId>;

impl<S: crate::store::Store> super::Rooms<S> {
    /// The app's quotas in force.
    pub fn quota(&self, app: &AppId) -> Quota {
        self.quotas.load().of(app)
    }

    /// Replaces every app's quotas (a configuration reload).
    pub fn set_quotas(&self, quotas: Quotas) {
        self.quotas.store(Arc::new(quotas));
    }

    /// A place for one more live room of `app`, held while it is created here; refused at
    /// its quota.
    pub(super) async fn room_place(&self, app: &AppId) -> Result<Option<Held>, ServiceError> {
        let most = self.quota(app).live_rooms;
        if most == 0 {
            return Ok(None);
        }
        let mut live = self.store.live_room_count(app).await?;
        if live >= most {
            // The index may still hold ended rooms: count the live ones (reading them takes
            // the ended ones out).
            live = self.count_in_rooms(app, false, most, |_| 1).await?;
        }
        self.creating
            .take(app, most, live)
            .map(Some)
            .ok_or(Reached::LiveRooms(most).into())
    }

    /// Refused (`NodeError::Full`, a 503) when `node` holds all but the share of its sessions
    /// kept spare. A node that cannot say is not refused here: what is asked of it next fails
    /// the same way.
    pub(super) async fn sessions_to_spare(
        &self,
        node: &crate::node::NodeHandle,
    ) -> Result<(), ServiceError> {
        let reserved = self.quotas.load().node_reserved_pct;
        if reserved == 0 {
            return Ok(());
        }
        match node.sessions().await {
            Ok(sessions) if !sessions.spare(reserved) => Err(ServiceError::Node(
                crate::node::NodeError::Full(node.config.prefix.to_string()),
            )),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(node = %node.config.prefix, error = %e, "node sessions unknown");
                Ok(())
            }
        }
    }

    /// Refused when the app already records in its whole quota of rooms.
    pub(super) async fn recording_place(&self, app: &AppId) -> Result<(), ServiceError> {
        let most = self.quota(app).recordings;
        if most == 0 {
            return Ok(());
        }
        let recording = self
            .count_in_rooms(app, true, most, |r| usize::from(r.recording.is_some()))
            .await?;
        if recording >= most {
            return Err(Reached::Recordings(most).into());
        }
        Ok(())
    }

    /// What `count` counts in the app's live rooms (with `media`, only those that record or
    /// carry a live stream: the media index), summed up to `most` (then it stops).
    pub(super) async fn count_in_rooms(
        &self,
        app: &AppId,
        media: bool,
        most: usize,
        count: impl Fn(&crate::conference::Room) -> usize,
    ) -> Result<usize, ServiceError> {
        let (mut found, mut after) = (0, None);
        loop {
            let page = match media {
                true => self.store.media_rooms_of_app(app, after, 500).await?,
                false => self.store.live_rooms_of_app(app, after, 500).await?,
            };
            found += page.items.iter().map(&count).sum::<usize>();
            match page.next {
                Some(next) if found < most => after = Some(next),
                _ => return Ok(found),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_changes_only_what_it_sets() {
        let o = QuotaOverride {
            live_rooms: Some(3),
            ..QuotaOverride::default()
        };
        let q = o.over(Quota::default());
        assert_eq!(q.live_rooms, 3);
        assert_eq!(q.members_per_room, Quota::default().members_per_room);
    }
}
