//! Pipelines on a Redis Cluster. The cluster client refuses a pipeline whose commands hash to
//! different slots, and answers a pipeline's failing command by failing all of it, where a
//! caller must see which command failed (a `NOSCRIPT` says that one did not run). So a plain
//! pipeline is split by slot: each slot's commands go as one pipeline to the master that holds
//! it (one request, one read for the lot, as on a single server: a batch of room writes over
//! an app's shards costs each master one round trip), all slots at once; the replies are put
//! back in the pipeline's order. A slot's pipeline that a command fails is sent again one
//! command at a time, so each command's server error is its own reply, as on a single server.
//! A transaction goes whole (its keys share a slot, by design).

use futures_util::future::join_all;
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::{Arg, Cmd, Pipeline, RedisResult, Value};

use super::shards::slot;

/// Commands of one slot, each with its place in the pipeline.
type Group<'a> = Vec<(usize, &'a Cmd)>;

pub(super) async fn pipeline(
    cluster: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    if pipeline.is_transaction() {
        return cluster.req_packed_commands(pipeline, offset, count).await;
    }
    // Commands by slot, in order; a command without a key goes alone.
    let mut groups: Vec<(Option<u32>, Group)> = Vec::new();
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        let slot = key_slot(cmd);
        match groups
            .iter_mut()
            .find(|(s, _)| slot.is_some() && *s == slot)
        {
            Some((_, cmds)) => cmds.push((i, cmd)),
            None => groups.push((slot, vec![(i, cmd)])),
        }
    }
    let answers = join_all(groups.iter().map(|(_, cmds)| {
        let cluster = cluster.clone();
        send_group(cluster, cmds)
    }))
    .await;
    let mut replies: Vec<Option<Value>> = vec![None; pipeline.len()];
    for ((_, cmds), answer) in groups.iter().zip(answers) {
        for ((i, _), reply) in cmds.iter().zip(answer?) {
            replies[*i] = Some(reply);
        }
    }
    Ok(replies
        .into_iter()
        .map(|r| r.unwrap_or(Value::Nil))
        .collect())
}

/// One slot's commands as one pipeline; if a command fails, each alone.
async fn send_group(
    mut cluster: ClusterConnection,
    cmds: &[(usize, &Cmd)],
) -> RedisResult<Vec<Value>> {
    if let [(_, cmd)] = cmds {
        return Ok(vec![server_error_as_reply(
            cluster.req_packed_command(cmd).await,
        )?]);
    }
    let mut pipe = redis::pipe();
    for (_, cmd) in cmds {
        pipe.add_command((*cmd).clone());
    }
    match cluster.req_packed_commands(&pipe, 0, cmds.len()).await {
        Ok(replies) if replies.len() == cmds.len() => return Ok(replies),
        Ok(_) => {}
        Err(e) if is_connection_error(&e) => return Err(e),
        Err(_) => {}
    }
    let mut replies = Vec::with_capacity(cmds.len());
    for (_, cmd) in cmds {
        replies.push(server_error_as_reply(
            cluster.req_packed_command(cmd).await,
        )?);
    }
    Ok(replies)
}

/// The slot of the command's first key, for the commands this store pipelines: the key is the
/// first argument, or for `EVALSHA`/`EVAL` the first after the key count.
fn key_slot(cmd: &Cmd) -> Option<u32> {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        Arg::Simple(bytes) => Some(bytes),
        Arg::Cursor => None,
    });
    let name = args.next()?.to_ascii_uppercase();
    let key = match name.as_slice() {
        b"EVALSHA" | b"EVAL" => {
            let _script = args.next()?;
            let numkeys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
            if numkeys == 0 {
                return None;
            }
            args.next()?
        }
        b"CLIENT" | b"SCRIPT" | b"PING" | b"INFO" => return None,
        _ => args.next()?,
    };
    Some(slot(std::str::from_utf8(hash_tag(key)).ok()?))
}

/// The slot of a key: its hash tag's, when it has one.
pub(crate) fn slot_of_key(key: &str) -> u32 {
    slot(std::str::from_utf8(hash_tag(key.as_bytes())).unwrap_or(key))
}

/// The part of a key its slot is computed from: the first `{…}` with something inside, else the
/// whole key (Redis Cluster's rule).
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
}

/// A command's error from the server as the reply a pipeline on one server would hold; an
/// error of the connection stays an error.
fn server_error_as_reply(reply: RedisResult<Value>) -> RedisResult<Value> {
    let e = match reply {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    if is_connection_error(&e) {
        return Err(e);
    }
    // redis-rs does not let a server error be built but by parsing one.
    let line = format!(
        "-{} {}\r\n",
        e.code().unwrap_or("ERR"),
        e.detail().unwrap_or("")
    )
    .replace(['\r', '\n'], " ");
    let line = format!("{}\r\n", line.trim_end());
    redis::parse_redis_value(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_route_by_their_first_keys_hash_tag() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc")
            .arg(2)
            .arg("sy:{app#3}:room:x")
            .arg("sy:{app#3}:outbox");
        assert_eq!(key_slot(&eval), Some(slot("app#3")));
        let mut set = redis::cmd("SET");
        set.arg("sy:ref:1234").arg("v");
        assert_eq!(key_slot(&set), Some(slot("sy:ref:1234")));
        let mut no_keys = redis::cmd("EVALSHA");
        no_keys.arg("abc").arg(0);
        assert_eq!(key_slot(&no_keys), None);
        assert_eq!(hash_tag(b"a{}b{c}"), b"a{}b{c}");
        assert_eq!(hash_tag(b"x{tag}y"), b"tag");
    }

    #[test]
    fn a_commands_server_error_is_its_reply_and_a_lost_connection_an_error() {
        let noscript = redis::RedisError::from((
            redis::ErrorKind::NoScriptError,
            "An error was signalled by the server",
            "No matching script. Please use EVAL.".to_owned(),
        ));
        match server_error_as_reply(Err(noscript)) {
            Ok(Value::ServerError(e)) => assert_eq!(e.code(), "NOSCRIPT"),
            other => panic!("{other:?}"),
        }
        let wrongtype = redis::RedisError::from((
            redis::ErrorKind::ExtensionError,
            "An error was signalled by the server",
            "WRONGTYPE Operation against a key holding the wrong kind of value".to_owned(),
        ));
        assert!(matches!(
            server_error_as_reply(Err(wrongtype)),
            Ok(Value::ServerError(_))
        ));
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(server_error_as_reply(Err(io)).is_err());
        assert_eq!(server_error_as_reply(Ok(Value::Int(1))), Ok(Value::Int(1)));
    }
}
