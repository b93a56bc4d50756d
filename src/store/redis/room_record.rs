//! A room's record in Redis: the hash `seq`, `json` (the room without its past participations)
//! and `past` (those, written only when they change). A mute in a room with a long history
//! rewrites a kilobyte or two, not the history: a room at its 100 past participations is about
//! 35 KB of JSON, and every event used to rewrite all of it.
//!
//! `past` is `<version>|<JSON list>`, the version being the room's `seq` when the list was
//! written. A version is never written with other contents, so the room cache keeps a room's list
//! under its version through an invalidation (`Slot::Stale`), and the next read, whose record
//! still names that version, takes the list kept instead of parsing it again. In memory the list
//! is shared (`Arc`): every change starts from a copy of the room, which no longer copies its
//! history. Records written before the field existed hold the list inside `json`; so does a
//! write of such a version during a rolling upgrade. Reading merges both (the field's, then the
//! ones `json` adds, each participation once, the newest 100 kept), and such a record is not
//! "saved" ([`Decoded::past_saved`]): the next write sends the list into the field.

use std::sync::Arc;

use crate::conference::{PAST_MEMBERS_KEPT, Room};
use crate::store::StoreError;
use crate::store::room_cache::KnownPast;

/// The record's fields, in the order reads ask for them (`HMGET key json past`).
pub(super) const FIELDS: [&str; 2] = ["json", "past"];

/// A room read from its record.
pub(super) struct Decoded {
    pub room: Room,
    /// The version of the record's `past` field if it holds exactly `room.past_members` (0: no
    /// field, and none); `None` when it does not (a record of before): a write that leaves them
    /// alone need not send them only when it is known.
    pub past: Option<u64>,
}

/// The room of a record's `json` and `past` fields; `known`: a list this process read or wrote
/// before, used instead of parsing the field again when its version is the field's.
pub(super) fn decode(
    key: &str,
    json: &str,
    past: Option<&str>,
    known: Option<KnownPast>,
) -> Result<Decoded, StoreError> {
    let mut room: Room = super::decode(key, json)?;
    let inline = std::mem::take(&mut room.past_members);
    let Some(past) = past else {
        // Laid out before the field existed (or never any past participation).
        let saved = inline.is_empty().then_some(0);
        room.past_members = inline;
        return Ok(Decoded { room, past: saved });
    };
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    };
    let (version, list) = past
        .split_once('|')
        .ok_or_else(|| corrupt("the past field lacks its version"))?;
    let version: u64 = version
        .parse()
        .map_err(|_| corrupt("the past field's version is not a number"))?;
    room.past_members = match known {
        Some((v, list)) if v == version => list,
        _ => Arc::new(super::decode(key, list)?),
    };
    if inline.is_empty() {
        return Ok(Decoded {
            room,
            past: Some(version),
        });
    }
    // An instance of before retired some inside the JSON: both, each participation once.
    let merged = Arc::make_mut(&mut room.past_members);
    for m in inline.iter() {
        if !merged
            .iter()
            .any(|p| p.conferencecall_id == m.conferencecall_id)
        {
            merged.push(m.clone());
        }
    }
    if merged.len() > PAST_MEMBERS_KEPT {
        let over = merged.len() - PAST_MEMBERS_KEPT;
        merged.drain(..over);
    }
    Ok(Decoded { room, past: None })
}

/// The `past` field's value for `room`'s past participations (its version: the room's `seq`).
pub(super) fn encode_past(room: &Room) -> Vec<u8> {
    let mut out = format!("{}|", room.seq).into_bytes();
    // A list of plain structs: it cannot fail to serialize.
    serde_json::to_writer(&mut out, &*room.past_members).unwrap_or_default();
    out
}

/// Whether a write of `new` over `old` must send the past participations: they changed, or
/// the record does not hold them as `old` has them (`saved`: [`Decoded::past`] of `old`).
pub(super) fn past_to_send(old: &Room, new: &Room, saved: Option<u64>) -> bool {
    // Shared lists compare by pointer first: a change that left them alone costs nothing.
    saved.is_none() || old.past_members != new.past_members
}

/// The `json` an instance of before this layout wrote: `past` inside it.
#[cfg(test)]
fn record(room: &Room, past: Option<&[crate::conference::Member]>) -> String {
    let mut json = serde_json::to_value(room).unwrap_or_default();
    if let (Some(list), Some(obj)) = (past, json.as_object_mut()) {
        obj.insert(
            "past_members".into(),
            serde_json::to_value(list).unwrap_or_default(),
        );
    }
    json.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conference::{Member, NodePrefix, RoomId, RoomType, SessionId};

    fn room() -> Room {
        Room::new(
            RoomId::new(&NodePrefix::parse("abcde").unwrap(), uuid::Uuid::new_v4()),
            crate::conference::AppId::parse("app").unwrap(),
            "r".into(),
            RoomType::Conference,
            uuid::Uuid::new_v4().to_string(),
            1,
        )
    }

    fn past(n: usize) -> Vec<Member> {
        let node = NodePrefix::parse("abcde").unwrap();
        (0..n)
            .map(|i| {
                let s = SessionId::new(&node, &uuid::Uuid::new_v4().to_string());
                Member::new(s, format!("{i}"), "200".into(), None, 2)
            })
            .collect()
    }

    #[test]
    fn the_json_leaves_the_past_out_and_the_field_brings_it_back() {
        let mut r = room();
        r.past_members = Arc::new(past(3));
        r.seq = 7;
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("past_members"), "{json}");
        let field = String::from_utf8(encode_past(&r)).unwrap();
        assert!(field.starts_with("7|["), "{field}");
        let back = decode("k", &json, Some(&field), None).unwrap();
        assert_eq!(back.past, Some(7));
        assert_eq!(back.room, r);
        // Known under its version: taken as it is, not parsed again.
        let known = (7, Arc::new(past(1)));
        let back = decode("k", &json, Some(&field), Some(known.clone())).unwrap();
        assert!(Arc::ptr_eq(&back.room.past_members, &known.1));
        let stale = (6, Arc::new(past(1)));
        let back = decode("k", &json, Some(&field), Some(stale)).unwrap();
        assert_eq!(back.room, r);
    }

    #[test]
    fn a_record_of_before_keeps_its_past_and_is_not_saved_yet() {
        let mut r = room();
        let list = past(2);
        let json = record(&r, Some(&list));
        let back = decode("k", &json, None, None).unwrap();
        assert_eq!(*back.room.past_members, list);
        assert_eq!(
            back.past, None,
            "the next write must move them to the field"
        );
        // A record of before with no past at all is as saved as it gets.
        let json = record(&r, None);
        assert_eq!(decode("k", &json, None, None).unwrap().past, Some(0));
        // The next write sends them even when it leaves them alone.
        r.past_members = Arc::new(list);
        assert!(past_to_send(&r, &r, None));
        assert!(!past_to_send(&r, &r, Some(3)));
    }

    #[test]
    fn an_older_writer_during_an_upgrade_adds_to_the_field_and_nothing_is_lost() {
        let mut r = room();
        let list = past(PAST_MEMBERS_KEPT);
        r.past_members = Arc::new(list.clone());
        let field = String::from_utf8(encode_past(&r)).unwrap();
        // An instance of before wrote the room with the one participation that ended since
        // inside its JSON (and without the ones it could not see).
        let added = past(1);
        let json = record(&r, Some(&added));
        let back = decode("k", &json, Some(&field), None).unwrap();
        assert_eq!(back.past, None);
        assert_eq!(back.room.past_members.len(), PAST_MEMBERS_KEPT);
        assert_eq!(back.room.past_members.last(), added.last());
        assert_eq!(back.room.past_members[0], list[1], "the oldest went");
    }
}
