//! The delivery log as an application pages through it: the attempts, newest first, that match a
//! filter (outcome, room, type: all of those given), a page at a time, and where the next page
//! starts. Reads the store's log ([`Deliveries::delivery_log`]) and nothing else; knows nothing
//! of HTTP.
//!
//! A filter that few attempts match is served by reading further down the log, but never more
//! than [`SCANNED_PER_PAGE`] entries for one page: a page that reached that bound ends there,
//! short (even empty), with a cursor at the last entry read. The next page goes on from it, so
//! no attempt is skipped and none is shown twice, and a request costs a bounded read however
//! rare the matches are.

use crate::conference::{AppId, EventKind, RoomId};
use crate::store::{Deliveries, DeliveryAttempt, StoreError};
use crate::telemetry::WebhookOutcome;

/// The most log entries one page reads looking for matches: a fifth of what the log keeps
/// ([`crate::store::DELIVERY_LOG_KEPT`]), so a filter walks the whole log in five pages.
pub const SCANNED_PER_PAGE: usize = 2_000;

/// The most entries read from the store at once, after the first read (a page and one more).
const READ_AT_ONCE: usize = 500;

/// Which attempts a page holds: those that match every condition given; none given, every
/// attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub outcome: Option<WebhookOutcome>,
    pub room: Option<RoomId>,
    pub kind: Option<EventKind>,
}

impl LogFilter {
    pub fn matches(&self, attempt: &DeliveryAttempt) -> bool {
        self.outcome.is_none_or(|o| attempt.outcome == o.as_str())
            && self.room.as_ref().is_none_or(|r| attempt.room == *r)
            && self.kind.is_none_or(|k| attempt.kind == k)
    }
}

/// One page of the log: its attempts (with their entry ids), newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub attempts: Vec<(String, DeliveryAttempt)>,
    /// Where the next page starts (exclusive): the last attempt returned, or the last entry read
    /// when the page stopped at [`SCANNED_PER_PAGE`]. `None`: the log ends with this page.
    pub next: Option<String>,
}

/// The page of at most `limit` (at least 1) attempts matching `filter`, older than the entry
/// `before` (none: from the newest). Errors are the store's.
pub async fn page<S: Deliveries>(
    store: &S,
    app: &AppId,
    before: Option<&str>,
    limit: usize,
    filter: &LogFilter,
) -> Result<LogPage, StoreError> {
    page_scanning(store, app, before, limit, filter, SCANNED_PER_PAGE).await
}

/// [`page`], reading at most `scanned` entries (at least a page and one more).
pub async fn page_scanning<S: Deliveries>(
    store: &S,
    app: &AppId,
    before: Option<&str>,
    limit: usize,
    filter: &LogFilter,
    scanned: usize,
) -> Result<LogPage, StoreError> {
    let limit = limit.max(1);
    // A page and one more: the one more says whether another page follows.
    let budget = scanned.max(limit + 1);
    let mut attempts: Vec<(String, DeliveryAttempt)> = Vec::new();
    let mut from = before.map(str::to_owned);
    let mut read = 0;
    let mut ask = limit + 1;
    loop {
        let ask_now = ask.min(budget - read);
        let rows = store.delivery_log(app, from.as_deref(), ask_now).await?;
        read += rows.len();
        let ended = rows.len() < ask_now;
        for (id, attempt) in rows {
            from = Some(id.clone());
            if !filter.matches(&attempt) {
                continue;
            }
            if attempts.len() == limit {
                let next = attempts.last().map(|(id, _)| id.clone());
                return Ok(LogPage { attempts, next });
            }
            attempts.push((id, attempt));
        }
        if ended {
            return Ok(LogPage {
                attempts,
                next: None,
            });
        }
        if read >= budget {
            return Ok(LogPage {
                attempts,
                next: from,
            });
        }
        ask = READ_AT_ONCE.max(limit + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use proptest::prelude::*;

    fn app() -> AppId {
        AppId::parse("log-app").unwrap()
    }

    fn room(n: u8) -> RoomId {
        RoomId::parse(&format!(
            "abcde-room-00000000-0000-4000-8000-0000000000{n:02x}"
        ))
        .unwrap()
    }

    const OUTCOMES: [WebhookOutcome; 3] = [
        WebhookOutcome::Delivered,
        WebhookOutcome::Retry,
        WebhookOutcome::DeadLetter,
    ];
    const KINDS: [EventKind; 2] = [EventKind::Created, EventKind::MemberJoined];

    /// A log of these attempts (oldest first): (outcome, room, kind) by index.
    async fn logged(rows: &[(usize, u8, usize)]) -> MemoryStore {
        let store = MemoryStore::new();
        for (n, &(outcome, r, kind)) in rows.iter().enumerate() {
            let attempt = DeliveryAttempt {
                message_id: format!("msg_{n}-0"),
                kind: KINDS[kind],
                room: room(r),
                seq: n as u64,
                attempt: 1,
                outcome: OUTCOMES[outcome].as_str().to_owned(),
                status: None,
                error: None,
                at: n as i64,
                duration_ms: 0,
            };
            store.log_delivery(&app(), &attempt, None).await.unwrap();
        }
        store
    }

    /// Every page, in order: each page's attempts (message ids) and whether it was full.
    async fn walk(
        store: &MemoryStore,
        filter: &LogFilter,
        limit: usize,
        scanned: usize,
    ) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = page_scanning(store, &app(), before.as_deref(), limit, filter, scanned)
                .await
                .unwrap();
            assert!(page.attempts.len() <= limit);
            pages.push(
                page.attempts
                    .iter()
                    .map(|(_, a)| a.message_id.clone())
                    .collect(),
            );
            match page.next {
                Some(next) => before = Some(next),
                None => return pages,
            }
            assert!(pages.len() <= 10_000, "the cursor never ends");
        }
    }

    #[test]
    fn the_outcome_filter_takes_the_names_the_log_writes() {
        for o in OUTCOMES {
            let parsed: WebhookOutcome =
                serde_json::from_value(serde_json::json!(o.as_str())).unwrap();
            assert_eq!(parsed, o);
        }
    }

    #[tokio::test]
    async fn a_rare_match_is_reached_through_short_pages_each_reading_the_bound() {
        // 100 attempts, the oldest alone a dead letter.
        let mut rows = vec![(0, 0, 0); 100];
        rows[0].0 = 2;
        let store = logged(&rows).await;
        let filter = LogFilter {
            outcome: Some(WebhookOutcome::DeadLetter),
            ..LogFilter::default()
        };
        let pages = walk(&store, &filter, 5, 30).await;
        // 30, 30, 30 read with nothing found; the fourth reads the last 10 and ends.
        assert_eq!(
            pages,
            vec![vec![], vec![], vec![], vec!["msg_0-0".to_owned()]]
        );
        // A page that is full ends at its last attempt, not at the last entry it read.
        let page = page_scanning(&store, &app(), None, 3, &LogFilter::default(), 30)
            .await
            .unwrap();
        assert_eq!(page.next.as_deref(), Some(page.attempts[2].0.as_str()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the log, filter, page size and bound: the pages, end to end, are the
        /// matching attempts newest first, each once; only the last page has no cursor.
        #[test]
        fn paging_a_filter_loses_and_repeats_nothing(
            rows in proptest::collection::vec((0..3usize, 0..3u8, 0..2usize), 0..120),
            outcome in proptest::option::of(0..3usize),
            r in proptest::option::of(0..3u8),
            kind in proptest::option::of(0..2usize),
            limit in 1..12usize,
            scanned in 1..40usize,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let filter = LogFilter {
                outcome: outcome.map(|o| OUTCOMES[o]),
                room: r.map(room),
                kind: kind.map(|k| KINDS[k]),
            };
            let pages = runtime.block_on(async {
                walk(&logged(&rows).await, &filter, limit, scanned).await
            });
            let expected: Vec<String> = rows
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, (o, rm, k))| {
                    filter.outcome.is_none_or(|f| f == OUTCOMES[*o])
                        && filter.room.as_ref().is_none_or(|f| *f == room(*rm))
                        && filter.kind.is_none_or(|f| f == KINDS[*k])
                })
                .map(|(n, _)| format!("msg_{n}-0"))
                .collect();
            prop_assert_eq!(pages.concat(), expected);
            // A page reads a page and one more at least, so no filter needs more pages than
            // the log has entries (plus the last, empty, one).
            prop_assert!(pages.len() <= rows.len() + 1);
        }
    }
}
