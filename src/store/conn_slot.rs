//! A connection every caller takes a clone of, made by one caller at a time.
//!
//! Every room read and write (and every replication check) takes the connection, so it sits
//! behind a lock held for the clone alone, never across an await. Behind a fair async lock each
//! caller waited for the one before it to be scheduled again: under load (thousands of requests
//! waiting) the handoffs came slower than the callers, and one instance stopped writing
//! altogether at 6,000 events a second (`benches/scale.rs`, `docs/benchmarks.md`). The async
//! lock is only taken to connect.

use std::future::Future;

pub(crate) struct ConnSlot<T> {
    current: std::sync::Mutex<Option<T>>,
    /// Held while connecting: one caller connects, the others wait for its connection.
    connecting: tokio::sync::Mutex<()>,
}

impl<T: Clone> ConnSlot<T> {
    pub(crate) fn new() -> ConnSlot<T> {
        ConnSlot {
            current: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection kept, if `usable` takes it.
    fn usable(&self, usable: &impl Fn(&T) -> bool) -> Option<T> {
        self.slot().as_ref().filter(|c| usable(c)).cloned()
    }

    /// The connection kept if `usable` takes it, else the one `connect` makes, kept from then
    /// on. A caller that waited while another connected takes that one.
    pub(crate) async fn get_or_connect<E, Fut>(
        &self,
        usable: impl Fn(&T) -> bool,
        connect: impl FnOnce() -> Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(c) = self.usable(&usable) {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.usable(&usable) {
            return Ok(c);
        }
        let c = connect().await?;
        *self.slot() = Some(c.clone());
        Ok(c)
    }

    /// Forgets the connection (lost): the next caller connects again.
    pub(crate) fn clear(&self) {
        *self.slot() = None;
    }
}
