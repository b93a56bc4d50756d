//! Everything a real FreeSWITCH judges: the live suite (real nodes started on free ports, real
//! SIP calls from SIPp, a real Redis), the project's `freeswitch-conf/` on a real node, and the
//! differential tests that hold the simulator to the real node. The FreeSWITCH is
//! `SWITCHYARD_FREESWITCH` (default `/usr/local/freeswitch/bin/freeswitch`): `scripts/test` runs
//! this binary once per supported version.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/live.rs"]
mod live;
#[path = "../common/pair.rs"]
mod pair;
#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod burst;
mod chaos;
mod conference;
mod controller_kill;
mod cross_node;
mod dialout;
mod differential;
mod esl;
mod freeswitch_conf;
mod hung_node;
mod migrate;
mod moving;
mod nodes;
mod objects;
mod participants;
mod streams;
mod switches;
mod teardown;
