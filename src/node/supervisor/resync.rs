//! The supervisor's resync: the node's state read on its event connection and reconciled
//! with the store.

use std::time::Instant;

use super::{Supervisor, api, now_micros};
use crate::conference::snapshot::{SnapshotChannel, parse_channels, parse_conferences};
use crate::conference::{Observed, from_event};
use crate::esl::{Client, ClientError, EventStream};
use crate::node::describe;
use crate::node::reconciler::Before;
use crate::store::Store;

impl<S: Store> Supervisor<S> {
    /// Snapshot on the event connection (so every event before the reply is older than it),
    /// then reconcile the store with it. What the store holds is read first: the resync only
    /// changes rooms that are still as they were then (see [`Reconciler::before_snapshot`]).
    ///
    /// The events waiting on `stream` are applied first, and so are those that arrive before
    /// the snapshot's reply: the snapshot shows what they did, and a room it changes is marked
    /// with its newest event, so applied after it they would be dropped as older, unannounced
    /// (a member muted and unmuted meanwhile, muted again: one webhook for three changes).
    /// Events newer than the snapshot are applied after it is reconciled.
    pub(super) async fn resync(
        &self,
        events: &Client,
        stream: &mut EventStream,
        commands: &[Client],
        core: &str,
    ) -> Result<(), ClientError> {
        // Only on the strength of a lease that still holds (see `acting`): a process paused
        // past it asks the node nothing.
        if !self.acting() {
            return Ok(());
        }
        // A store that moved to another master first has what was kept applied again: the
        // snapshot marks the rooms with the node's newest event, after which the events it
        // may have lost would be stale.
        let began = Instant::now();
        self.apply(&[], began, &[], commands).await;
        let waiting = self.waiting(stream, core);
        self.apply_all(&waiting, commands).await;
        let failovers = self.failover_count();
        let before = match self.reconciler.before_snapshot().await {
            Ok(before) => before,
            Err(e) => {
                tracing::warn!(node = %describe(&self.config), error = %e, "resync could not reach the store; the next audit retries");
                return Ok(());
            }
        };
        // The lease is checked again before each request to the node: the process may have
        // been paused at any of the awaits before it (a resync under way when it was stopped
        // goes on where it was once woken, past a lease that ran out meanwhile).
        if !self.acting() {
            return Ok(());
        }
        let conferences = events.api(&api(&["conference", "json_list"])?).await?;
        // Every event numbered up to this came before the list and is in it.
        let snapshot_events = conferences.events_before();
        let conferences = conferences.into_data()?;
        if !self.acting() {
            return Ok(());
        }
        let channels = events
            .api(&api(&["show", "channels", "as", "json"])?)
            .await?
            .into_data()?;
        let conferences = parse_conferences(&conferences)
            .map_err(|e| ClientError::Protocol(format!("conference json_list: {e}")))?;
        let mut channels = parse_channels(&channels)
            .map_err(|e| ClientError::Protocol(format!("show channels: {e}")))?;
        if !self.not_listed_yet(events, &before, &mut channels).await? {
            return Ok(());
        }
        let (shown, newer): (Vec<Observed>, Vec<Observed>) = self
            .waiting(stream, core)
            .into_iter()
            .partition(|o| o.sequence <= snapshot_events);
        self.apply_all(&shown, commands).await;
        if self.failover_count() != failovers {
            // The store moved meanwhile: what was kept is applied again first, the next audit
            // resyncs.
            self.apply_all(&newer, commands).await;
            return Ok(());
        }
        match self
            .reconciler
            .resync(
                core,
                &before,
                &conferences,
                &channels,
                snapshot_events,
                now_micros(),
            )
            .await
        {
            Ok(effects) => self.execute(effects, commands, super::effects::Basis::Lease),
            Err(e) => {
                tracing::warn!(node = %describe(&self.config), error = %e, "resync could not reach the store; the next audit retries");
                self.apply_all(&newer, commands).await;
                return Ok(());
            }
        }
        self.apply_all(&newer, commands).await;
        if self.acting() {
            self.remove_orphans(&before, &conferences, commands).await;
        }
        crate::telemetry::resync_done(self.config.prefix.as_str(), began.elapsed());
        Ok(())
    }

    /// The node's events already on `stream`, taken off it.
    pub(super) fn waiting(&self, stream: &mut EventStream, core: &str) -> Vec<Observed> {
        let mut waiting = Vec::new();
        while let Some(event) = stream.try_recv() {
            crate::telemetry::esl_event(self.config.prefix.as_str(), &event);
            waiting.extend(from_event(&event).filter(|o| o.core_uuid == core));
        }
        waiting
    }

    /// Applies `events` in order, a batch at a time.
    pub(super) async fn apply_all(&self, events: &[Observed], commands: &[Client]) {
        for chunk in events.chunks(512) {
            self.apply(chunk, Instant::now(), &[], commands).await;
        }
    }

    /// `show channels` comes from FreeSWITCH's core database, a few hundred milliseconds behind
    /// the events (0.2–0.3 s measured on 1.11): a call that began just before the snapshot is not
    /// in it yet. Before a stored live call missing from the list is taken as ended, the node is
    /// asked (`uuid_exists` reads its in-memory session table); the calls it still has are added
    /// to the list. Only the disagreements are asked about: none, usually. False when the lease
    /// lapsed before all were asked (the list is then incomplete: the resync stops).
    async fn not_listed_yet(
        &self,
        events: &Client,
        before: &Before,
        channels: &mut Vec<SnapshotChannel>,
    ) -> Result<bool, ClientError> {
        let listed: std::collections::HashSet<&str> =
            channels.iter().map(|c| c.uuid.as_str()).collect();
        let missing: Vec<String> = before
            .channels
            .iter()
            .filter(|c| !listed.contains(c.as_str()))
            .cloned()
            .collect();
        for channel in missing {
            if !self.acting() {
                return Ok(false);
            }
            let reply = events.api(&api(&["uuid_exists", &channel])?).await?;
            if reply.text().trim() == "true" {
                channels.push(SnapshotChannel::not_listed_yet(channel));
            }
        }
        Ok(true)
    }
}
