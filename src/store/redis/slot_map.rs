//! A Redis Cluster's slot map as a node answers `CLUSTER SLOTS`: which master serves each
//! range of slots. Asked by the room cache's tracked connections ([`crate::store::room_cache`])
//! and the sharded outbox notifications ([`super::appended`]), which talk to each master
//! themselves.

use std::time::Duration;

use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisError, Value};

/// Slots `first..=last` and the master serving them.
pub(crate) type Range<T> = (u32, u32, T);

pub(crate) fn no_master(what: String) -> RedisError {
    RedisError::from((
        redis::ErrorKind::ClusterConnectionNotFound,
        "no master serves a slot",
        what,
    ))
}

/// The connection settings of the nodes `nodes` names (`redis://host:port/` URLs): where a
/// slot map is asked first.
pub(crate) fn seeds(nodes: &[String]) -> Result<Vec<ConnectionInfo>, RedisError> {
    nodes
        .iter()
        .map(|url| {
            Ok(redis::Client::open(url.as_str())?
                .get_connection_info()
                .clone())
        })
        .collect()
}

/// The slot map as the first of `candidates` that has one answers it.
pub(crate) async fn first_map(
    candidates: &[ConnectionInfo],
) -> Result<Vec<Range<ConnectionInfo>>, RedisError> {
    let mut last = None;
    for seed in candidates {
        match slots_from(seed).await {
            Ok(map) if !map.is_empty() => return Ok(map),
            Ok(_) => last = Some(no_master(format!("{} serves no slot", seed.addr))),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| no_master("no node to ask".into())))
}

/// `CLUSTER SLOTS` as `seed` answers it: each range and its master (as `seed`'s connection
/// settings with the master's address; an empty host is `seed`'s).
async fn slots_from(seed: &ConnectionInfo) -> Result<Vec<Range<ConnectionInfo>>, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2));
    let mut conn = redis::Client::open(seed.clone())?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let Value::Array(ranges) = reply else {
        return Err(no_master(format!("CLUSTER SLOTS answered {reply:?}")));
    };
    let mut map = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let (Ok(first), Ok(last), Ok(port)) = (
            u32::try_from(*first),
            u32::try_from(*last),
            u16::try_from(*port),
        ) else {
            continue;
        };
        map.push((first, last, at(seed, host, port)));
    }
    Ok(map)
}

/// `seed`'s connection settings at another address (a node that has no name for itself answers
/// an empty host or `?`: the seed's host).
fn at(seed: &ConnectionInfo, host: String, port: u16) -> ConnectionInfo {
    let mut info = seed.clone();
    info.addr = match &seed.addr {
        ConnectionAddr::Tcp(seed_host, _) => ConnectionAddr::Tcp(or_seed(host, seed_host), port),
        ConnectionAddr::TcpTls {
            host: seed_host,
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: or_seed(host, seed_host),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        unix => unix.clone(),
    };
    info
}

fn or_seed(host: String, seed: &str) -> String {
    match host.as_str() {
        "" | "?" => seed.to_owned(),
        _ => host,
    }
}
