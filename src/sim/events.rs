//! Events as the simulated core fires them: the standard header prologue FreeSWITCH puts on every
//! event, then the event's own headers; serialized once per wire format and shared by every
//! connection that receives it.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::esl::{ContentType, EventData, EventName};

/// True when `name` is an event type FreeSWITCH knows (so `event <name>` accepts it).
pub fn is_event_name(name: &str) -> bool {
    !matches!(EventName::parse(name), EventName::Other(_))
}

/// One fired event, shared by all connections.
#[derive(Debug)]
pub struct SimEvent {
    pub name: String,
    pub subclass: Option<String>,
    pub data: EventData,
    plain: OnceLock<Bytes>,
    json: OnceLock<Bytes>,
}

impl SimEvent {
    pub fn new(data: EventData) -> SimEvent {
        let name = data.get("Event-Name").unwrap_or_default().to_owned();
        let subclass = data.get("Event-Subclass").map(str::to_owned);
        SimEvent {
            name,
            subclass,
            data,
            plain: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// The frame for a connection in `content_type` format, serialized at most once.
    pub fn frame(&self, content_type: &ContentType) -> Bytes {
        let cell = match content_type {
            ContentType::EventJson => &self.json,
            _ => &self.plain,
        };
        cell.get_or_init(|| self.data.to_frame(content_type))
            .clone()
    }
}

/// Identity of the simulated FreeSWITCH process, stamped on every event.
#[derive(Debug, Clone)]
pub struct Identity {
    pub core_uuid: String,
    pub hostname: String,
    pub ipv4: String,
    pub ipv6: String,
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) of a time in microseconds since the epoch.
pub fn local_date(micros: u64) -> String {
    dates(micros).0
}

/// `YYYY-MM-DD hh:mm:ss` and the RFC 822 form, both in UTC (the simulator runs in UTC).
fn dates(micros: u64) -> (String, String) {
    let secs = (micros / 1_000_000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let local = format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}");
    let gmt = format!(
        "{weekday}, {day:02} {} {year:04} {h:02}:{m:02}:{s:02} GMT",
        MONTHS[(month - 1) as usize]
    );
    (local, gmt)
}

/// Starts an event with FreeSWITCH's prologue. CUSTOM events carry `Event-Subclass` first, as
/// `switch_event_create_subclass` puts it there.
pub fn prologue(
    id: &Identity,
    name: &str,
    subclass: Option<&str>,
    sequence: u64,
    calling: (&str, &str, u32),
) -> EventData {
    let mut e = EventData::new();
    if let Some(subclass) = subclass {
        e.push("Event-Subclass", subclass);
    }
    let micros = now_micros();
    let (local, gmt) = dates(micros);
    e.push("Event-Name", name);
    e.push("Core-UUID", id.core_uuid.clone());
    e.push("FreeSWITCH-Hostname", id.hostname.clone());
    e.push("FreeSWITCH-Switchname", id.hostname.clone());
    e.push("FreeSWITCH-IPv4", id.ipv4.clone());
    e.push("FreeSWITCH-IPv6", id.ipv6.clone());
    e.push("Event-Date-Local", local);
    e.push("Event-Date-GMT", gmt);
    e.push("Event-Date-Timestamp", micros.to_string());
    e.push("Event-Calling-File", calling.0);
    e.push("Event-Calling-Function", calling.1);
    e.push("Event-Calling-Line-Number", calling.2.to_string());
    e.push("Event-Sequence", sequence.to_string());
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_formatted_as_freeswitch_formats_them() {
        // 1795333879682808 µs is the CODEC event of capture 01: 2026-11-22 07:51:19 UTC, a Sunday.
        let (local, gmt) = dates(1_795_333_879_682_808);
        assert_eq!(local, "2026-11-22 07:51:19");
        assert_eq!(gmt, "Sun, 22 Nov 2026 07:51:19 GMT");
    }
}
