//! The legs of calls carried across nodes (rooms that span media nodes, `node::bridge`): on the
//! room's node, the leg the other node's bridge arrives as (tied to its member by its tag); on
//! the call's node, the bridge's outbound leg, whose end fails a join still on its way.

use super::{Effects, Reconciler};
use crate::conference::apply::{Ignored, bridge_ended, node_leg};
use crate::conference::{ChannelFact, ChannelInfo, Micros, SessionId};
use crate::store::{Store, StoreError};

impl<S: Store> Reconciler<S> {
    /// An event of a leg another node carries into one of this node's rooms (its request user
    /// names the room, its tag the call's session; neither trusted further than the room's
    /// own join of that session, see [`node_leg`]).
    pub(super) async fn node_leg(
        &self,
        core: &str,
        session: &str,
        kind: ChannelFact,
        info: &ChannelInfo,
        cause: Option<&str>,
        now: Micros,
    ) -> Result<Effects, StoreError> {
        let Some(session) = SessionId::parse(session)
            .ok()
            .filter(|s| s.prefix() != self.node.prefix)
        else {
            self.count(false);
            return Ok(Vec::new());
        };
        let Some((room, app)) = self.known_room(&info.did).await? else {
            return Ok(Vec::new());
        };
        // A leg the room does not expect is hung up: judged on the room as stored, since the
        // join that expects it was written by whichever instance took the command, a moment
        // ago, and may not have reached this one's cache yet.
        self.update_judged(
            &app,
            &room,
            |r| node_leg(r, core, &session, &info.channel, kind, cause, now),
            |applied| {
                applied.ignored == Some(Ignored::UnknownMember) && !applied.effects.is_empty()
            },
        )
        .await
    }

    /// A bridge's outbound leg (on this node, carrying one of its calls to `room` on another
    /// node) ended: a join still on its way failed.
    pub(super) async fn bridge_ended(
        &self,
        room: &str,
        out: &str,
        cause: Option<&str>,
        now: Micros,
    ) -> Result<Effects, StoreError> {
        let Some((room, app)) = self.known_room(room).await? else {
            return Ok(Vec::new());
        };
        self.update(&app, &room, |r| bridge_ended(r, out, cause, now))
            .await
    }
}
