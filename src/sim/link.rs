//! The node-to-node SIP link between simulated nodes (rooms that span media nodes): each
//! simulator with a `node_sip` address (its `nodes` profile) is reachable by that address from
//! every other simulator in the process, as real nodes reach each other's `nodes` profile. The
//! messages are the SIP of `fixtures/esl/10_cross_node.md` reduced to what changes events: an
//! INVITE with the session tag, the 183 and 200 of the room's node, a refusal (480, 404, or the
//! 503 a closed port gives), a BYE either way, and the RTP that makes a member talk. A node that
//! dies sends nothing more: its peers' bridged legs time out on their `media_timeout`, as real
//! legs do when the RTP stops.
//!
//! Delivery never holds two nodes' locks: a message is queued on the peer's inbox (an unbounded
//! channel, so sending never waits) and the peer's own task applies it under its own lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::core::Core;

/// One SIP dialog's message. `call_id` names the dialog on both nodes (`sip_call_id`).
#[derive(Debug, Clone)]
pub(crate) enum SipMsg {
    /// The caller's node asks the room's node to take a leg into `user` (the room id).
    Invite(Invite),
    /// 183 Session Progress (the conference app pre-answers).
    Progress {
        call_id: String,
    },
    /// 200 OK (the member was added).
    Answer {
        call_id: String,
    },
    /// A final refusal: the SIP status and the cause of the Reason header.
    Refuse {
        call_id: String,
        status: u16,
        cause: String,
    },
    Bye {
        call_id: String,
    },
    /// INFO `message/update_display`: the caller's node tells the caller's name once bridged.
    Info {
        call_id: String,
    },
    /// The far end's RTP starts or stops carrying voice.
    Talk {
        call_id: String,
        on: bool,
    },
    /// A node stopped answering (killed): its RTP stopped.
    PeerGone {
        addr: SocketAddr,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Invite {
    pub call_id: String,
    /// The sending node's `nodes` profile.
    pub from: SocketAddr,
    /// The request user: the room id.
    pub user: String,
    /// `X-Switchyard-Session`, when the dial string set `sip_h_X-Switchyard-Session`.
    pub tag: Option<String>,
    pub cid_name: String,
    pub cid_number: String,
    /// The caller speaks already (its RTP carries voice from the start).
    pub speaking: bool,
}

impl SipMsg {
    pub(crate) fn call_id(&self) -> Option<&str> {
        match self {
            SipMsg::Invite(i) => Some(&i.call_id),
            SipMsg::Progress { call_id }
            | SipMsg::Answer { call_id }
            | SipMsg::Refuse { call_id, .. }
            | SipMsg::Bye { call_id }
            | SipMsg::Info { call_id }
            | SipMsg::Talk { call_id, .. } => Some(call_id),
            SipMsg::PeerGone { .. } => None,
        }
    }
}

type Inbox = mpsc::UnboundedSender<SipMsg>;

/// Every simulator's `nodes` profile in this process, by address.
static NODES: LazyLock<Mutex<HashMap<SocketAddr, Inbox>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn nodes() -> std::sync::MutexGuard<'static, HashMap<SocketAddr, Inbox>> {
    NODES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `msg` to the node at `to`; false when nothing listens there (the port is closed: a
/// real node gets an ICMP error and fails the request with 503 at once).
pub(crate) fn send(to: SocketAddr, msg: SipMsg) -> bool {
    nodes()
        .get(&to)
        .is_some_and(|inbox| inbox.send(msg).is_ok())
}

/// A simulator's registration: its inbox is served until `stop`; dropping it (the node dies)
/// takes the address away and tells every other node its RTP stopped.
pub(crate) struct Registration {
    addr: SocketAddr,
}

impl Registration {
    pub(crate) fn open(addr: SocketAddr, core: Arc<Core>, stop: CancellationToken) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        nodes().insert(addr, tx);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    msg = rx.recv() => match msg {
                        Some(msg) => core.sip_in(msg),
                        None => return,
                    },
                }
            }
        });
        Registration { addr }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut nodes = nodes();
        nodes.remove(&self.addr);
        for inbox in nodes.values() {
            let _ = inbox.send(SipMsg::PeerGone { addr: self.addr });
        }
    }
}
