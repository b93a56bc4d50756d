//! Sessions in Redis: each a hash (`seq`, `json`) in its shard, the app's live index, the
//! global session → app lookup and the node's set of live sessions.

use std::collections::HashMap;
use std::sync::Mutex;

use redis::AsyncCommands;

use super::{RedisStore, encode, unavailable};
use crate::conference::{AppId, Micros, NodePrefix, RoomId, Session, SessionId, SessionState};
use crate::store::{Page, StoreError, keys};

/// How many sessions' apps a process keeps: emptied when full, so a few reads again then.
const SESSION_APPS_KEPT: usize = 65_536;

/// The apps of the sessions this process has read or written. A session's app (`sy:sessapp:`)
/// is written as the call is first stored and never changes (a call stays its app's), so the
/// node's events of a call, and the API's commands, read it from Redis once per process.
#[derive(Default)]
pub(super) struct SessionApps(Mutex<HashMap<SessionId, AppId>>);

impl SessionApps {
    fn get(&self, id: &SessionId) -> Option<AppId> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn keep(&self, id: &SessionId, app: &AppId) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= SESSION_APPS_KEPT && !kept.contains_key(id) {
            kept.clear();
        }
        kept.insert(id.clone(), app.clone());
    }
}

impl RedisStore {
    pub(super) async fn get_session(
        &self,
        app: &AppId,
        id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        let key = keys::session(&self.shards.session_tag(app, id), id);
        let Some(tracked) = self.values_cache() else {
            return self.json_field(&key).await;
        };
        let mut hget = redis::cmd("HGET");
        hget.arg(&key).arg("json");
        let json = tracked
            .values(&[(&key, hget)])
            .await
            .map_err(unavailable)?
            .pop()
            .flatten();
        json.map(|j| super::decode(&key, &j)).transpose()
    }

    /// The tracked connection for sessions and their lookups (`room_cache/values.rs`): not on a
    /// cluster, whose shards' lookups live on different masters.
    fn values_cache(&self) -> Option<&crate::store::room_cache::Tracked> {
        self.rooms.as_deref().filter(|t| !t.is_cluster())
    }

    /// Where sessions' room lookups are kept: the values cache, with one shard only. With more,
    /// every lookup of a session but its room's own never exists, and a key read under
    /// tracking that nobody ever writes stays in Redis's tracking table for good (the soak's
    /// leak of before).
    pub(super) fn lookups_cache(&self) -> Option<&crate::store::room_cache::Tracked> {
        self.values_cache().filter(|_| self.shards.count() == 1)
    }

    pub(super) async fn get_session_app(
        &self,
        id: &SessionId,
    ) -> Result<Option<AppId>, StoreError> {
        if let Some(app) = self.session_apps.get(id) {
            return Ok(Some(app));
        }
        let app: Option<String> = self
            .conn()
            .get(keys::session_app(id))
            .await
            .map_err(unavailable)?;
        let app = app.and_then(|a| AppId::parse(&a).ok());
        if let Some(app) = &app {
            self.session_apps.keep(id, app);
        }
        Ok(app)
    }

    pub(super) async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let ended = session.state == SessionState::Ended;
        let _: () = redis::cmd("SET")
            .arg(keys::session_app(&session.id))
            .arg(session.app.as_str())
            .arg("EX")
            .arg(if ended {
                self.ended_sessions.as_secs()
            } else {
                7 * 24 * 3600
            })
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.session_apps.keep(&session.id, &session.app);
        let tag = self.shards.session_tag(&session.app, &session.id);
        let mut call = self.save_session.prepare_invoke();
        call.key(keys::session(&tag, &session.id))
            .key(keys::sessions(&tag))
            .arg(session.seq)
            .arg(encode(session))
            .arg(session.created_at)
            .arg(session.id.as_str())
            .arg(if ended { "1" } else { "0" })
            .arg(self.ended_sessions.as_secs());
        let written = call.invoke_async::<i64>(&mut conn).await;
        // Written on another connection than the tracked one: its push may trail this answer,
        // so this process forgets what it kept at once.
        if let Some(tracked) = self.values_cache() {
            let key = keys::session(&tag, &session.id);
            tracked.entries().forget_values([key.as_str()]);
        }
        written.map_err(unavailable)?;
        let member = format!("{} {}", session.app, session.id);
        let node = keys::node_sessions(&session.id.prefix());
        let _: () = if ended {
            conn.srem(node, member).await
        } else {
            conn.sadd(node, member).await
        }
        .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn page_sessions(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Session>, StoreError> {
        let record = |id: &str| {
            let id = SessionId::parse(id).ok()?;
            Some(keys::session(&self.shards.session_tag(app, &id), &id))
        };
        let indexes = self.in_every_shard(app, keys::sessions);
        self.page_of(&indexes, record, after, limit).await
    }

    pub(super) async fn node_sessions(
        &self,
        node: &NodePrefix,
    ) -> Result<Vec<Session>, StoreError> {
        let members: Vec<String> = self
            .conn()
            .smembers(keys::node_sessions(node))
            .await
            .map_err(unavailable)?;
        let ids: Vec<(AppId, SessionId)> = members
            .iter()
            .filter_map(|m| m.split_once(' '))
            .filter_map(|(app, id)| Some((AppId::parse(app).ok()?, SessionId::parse(id).ok()?)))
            .collect();
        // Read together, a chunk at a time (the connection pipelines them: a node of 200 calls
        // is one round trip, not 200, for every snapshot of it).
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(256) {
            let reads = chunk.iter().map(|(app, id)| self.get_session(app, id));
            let read = futures_util::future::try_join_all(reads).await?;
            out.extend(
                read.into_iter()
                    .flatten()
                    .filter(|s| s.state != SessionState::Ended),
            );
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub(super) async fn session_room_lookup(
        &self,
        app: &AppId,
        id: &SessionId,
    ) -> Result<Option<RoomId>, StoreError> {
        // The lookup lives with the room, in whichever shard that is.
        let lookups = self.in_every_shard(app, |tag| keys::session_room(tag, id));
        let kept = self.lookups_cache();
        let rooms: Vec<Option<String>> = match kept {
            Some(tracked) => {
                let reads: Vec<(&str, redis::Cmd)> = lookups
                    .iter()
                    .map(|key| (key.as_str(), redis::cmd("GET").arg(key).to_owned()))
                    .collect();
                tracked.values(&reads).await.map_err(unavailable)?
            }
            None => {
                let mut pipe = redis::pipe();
                for key in &lookups {
                    pipe.get(key);
                }
                pipe.query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?
            }
        };
        Ok(rooms.iter().flatten().find_map(|r| RoomId::parse(r).ok()))
    }
}
