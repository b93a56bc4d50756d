//! `show channels as json` in a scenario: FreeSWITCH answers it from its core database, which
//! its SQL thread updates from the events a few hundred milliseconds behind them, so a
//! scenario asks again until the listing agrees with the events it has seen.

use std::collections::HashMap;
use std::time::Duration;

use super::scenario::{Run, WAIT, command};

impl Run {
    /// `show channels as json` once the node's core database has caught up with the events
    /// (FreeSWITCH answers it from a database its SQL thread updates a few hundred milliseconds
    /// behind the events, and no event says when): polled until every channel alive by the
    /// events is listed with the destination and call state its last event reported. Only the
    /// settled reply is recorded; the polls' `API` events are left out of the comparison.
    pub async fn settled_channels(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = match self.ctl.api(&command("show channels as json")).await {
                Ok(r) => r.text().into_owned(),
                Err(e) => format!("ERR {e}"),
            };
            if self.channels_settled(&text) || tokio::time::Instant::now() > deadline {
                self.record("show channels as json", &text, "api");
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether `show channels as json` agrees with the events, as FreeSWITCH's core database
    /// applies them (`core_event_handler` in switch_core_sqldb.c): a row per CHANNEL_CREATE
    /// until CHANNEL_DESTROY; `state` from CHANNEL_STATE (not CS_NEW/INIT/HANGUP/REPORTING/
    /// DESTROY); `dest` and `cid_*` from CHANNEL_CREATE and the CS_ROUTING CHANNEL_STATE, `cid_*`
    /// from CALL_UPDATE too; `callstate` from CHANNEL_CALLSTATE (not DOWN/HANGUP);
    /// `application` from CHANNEL_EXECUTE.
    fn channels_settled(&self, text: &str) -> bool {
        let mut rows: HashMap<String, HashMap<&str, String>> = HashMap::new();
        for e in self.events() {
            let (Some(uuid), Some(name)) = (e.unique_id(), e.header("Event-Name")) else {
                continue;
            };
            let h = |n: &str| e.header(n).unwrap_or_default().into_owned();
            if name == "CHANNEL_CREATE" {
                let mut row = HashMap::new();
                row.insert("state", h("Channel-State"));
                row.insert("callstate", h("Channel-Call-State"));
                row.insert("dest", h("Caller-Destination-Number"));
                row.insert("application", String::new());
                rows.insert(uuid.clone().into_owned(), row);
            }
            let Some(row) = rows.get_mut(uuid.as_ref()) else {
                continue;
            };
            match name.as_ref() {
                "CHANNEL_DESTROY" => {
                    rows.remove(uuid.as_ref());
                }
                "CHANNEL_STATE" => {
                    let state = h("Channel-State");
                    if !matches!(
                        state.as_str(),
                        "CS_NEW" | "CS_INIT" | "CS_HANGUP" | "CS_REPORTING" | "CS_DESTROY"
                    ) {
                        if state == "CS_ROUTING" {
                            row.insert("dest", h("Caller-Destination-Number"));
                            row.insert("cid_name", h("Caller-Caller-ID-Name"));
                            row.insert("cid_num", h("Caller-Caller-ID-Number"));
                        }
                        row.insert("state", state);
                    }
                }
                "CALL_UPDATE" => {
                    row.insert("cid_name", h("Caller-Caller-ID-Name"));
                    row.insert("cid_num", h("Caller-Caller-ID-Number"));
                }
                "CHANNEL_CALLSTATE" => {
                    let state = h("Channel-Call-State");
                    if state != "DOWN" && state != "HANGUP" {
                        row.insert("callstate", state);
                    }
                }
                "CHANNEL_EXECUTE" => {
                    row.insert("application", h("Application"));
                }
                _ => {}
            }
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
            return false;
        };
        let listed = v["rows"].as_array().cloned().unwrap_or_default();
        listed.len() == rows.len()
            && listed.iter().all(|r| {
                let uuid = r["uuid"].as_str().unwrap_or_default();
                rows.get(uuid).is_some_and(|want| {
                    want.iter()
                        .all(|(k, v)| r[*k].as_str().unwrap_or_default() == v)
                })
            })
    }
}
