//! The shard count the data is laid out with ([`keys::LAYOUT_SHARDS`]), so that a controller
//! configured with another `redis_shards` does not look for rooms where they are not: it starts
//! only when the counts agree, or when no room is live on its nodes (ended rooms it no longer
//! finds just expire), and then records its own count.

use redis::AsyncCommands;

use super::{RedisStore, unavailable};
use crate::conference::NodePrefix;
use crate::store::{StoreError, keys};

/// Why a controller cannot use the data with its shard count.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "redis_shards is {configured}, but the data in Redis is laid out over {recorded} \
         shard(s) and {live} room(s) are live on this controller's nodes: keep redis_shards = \
         {recorded}, or change it once no room is live (see docs/operations.md, \"Redis Cluster\")"
    )]
    Mismatch {
        recorded: usize,
        configured: usize,
        live: usize,
    },
}

impl RedisStore {
    /// Checks the configured shard count against the one the data was laid out with (none
    /// recorded: one, the layout before shards), then records it; then indexes the nodes' live
    /// rooms the live listings would miss (data from before that index, `live.rs`).
    pub async fn claim_layout(&self, nodes: &[NodePrefix]) -> Result<(), LayoutError> {
        let mut conn = self.conn();
        let recorded: Option<String> = conn.get(keys::LAYOUT_SHARDS).await.map_err(unavailable)?;
        let was = match recorded.as_deref() {
            None => 1,
            Some(v) => v.parse().map_err(|_| StoreError::Corrupt {
                key: keys::LAYOUT_SHARDS.into(),
                reason: format!("not a shard count: {v}"),
            })?,
        };
        let n = self.shards.count();
        if was != n {
            let mut live = 0usize;
            for node in nodes {
                let rooms: usize = conn
                    .scard(keys::node_rooms(node))
                    .await
                    .map_err(unavailable)?;
                live += rooms;
            }
            if live > 0 {
                return Err(LayoutError::Mismatch {
                    recorded: was,
                    configured: n,
                    live,
                });
            }
            tracing::warn!(
                from = was,
                to = n,
                "redis_shards changed with no live room: new rooms are laid out over the new count"
            );
        }
        if recorded.as_deref() != Some(n.to_string().as_str()) {
            let _: () = conn
                .set(keys::LAYOUT_SHARDS, n)
                .await
                .map_err(unavailable)?;
        }
        for node in nodes {
            let indexed = self.index_live(node).await?;
            if indexed > 0 {
                tracing::info!(node = %node, rooms = indexed, "live rooms indexed");
            }
        }
        Ok(())
    }
}
