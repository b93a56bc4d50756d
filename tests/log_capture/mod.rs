//! Log lines captured in a test: the controller's JSON log format, read back as JSON objects.
//!
//! One subscriber is installed for the whole test binary (at `debug`), writing each line to the
//! buffer of the thread that logs it, if that thread is capturing. A `#[tokio::test]` runs on one
//! thread, so it captures what its spawned tasks log too. (Scoped subscribers, one per test,
//! race with each other over tracing's per-callsite cache when tests run in parallel.)
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Once};

use serde_json::Value;
use switchyard::server::logging::{self, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

thread_local! {
    static CAPTURING: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// The lines one test captured.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

/// Stops capturing on this thread when dropped.
pub struct Capturing(());

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURING.with(|c| c.borrow_mut().take());
    }
}

/// Where a line goes: the logging thread's buffer, or nowhere.
struct ToThread;

struct LineWriter(Option<Logs>);

impl std::io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Some(logs) = &self.0 {
            logs.0.lock().unwrap().extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ToThread {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(CAPTURING.with(|c| c.borrow().clone()))
    }
}

impl Logs {
    /// Captures every line this thread logs at `debug` and above until the guard drops.
    pub fn capture() -> (Logs, Capturing) {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let subscriber =
                logging::subscriber(LogFormat::Json, EnvFilter::new("debug"), ToThread);
            tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        });
        let logs = Logs::default();
        CAPTURING.with(|c| *c.borrow_mut() = Some(logs.clone()));
        (logs, Capturing(()))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// Every line, each a JSON object (a line that is not fails the test).
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }
}
