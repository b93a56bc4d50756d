//! Webhooks: the envelope applications receive ([`envelope`]), Standard Webhooks signatures
//! ([`sign`]), the address policy for application URLs ([`address`]), one HTTP attempt and its
//! verdict ([`deliver`]), one message's attempts until a verdict (`message`), the per-app
//! dispatcher that drains the store's outbox ([`dispatcher`]), and the delivery log paged and
//! filtered for applications ([`delivery_log`]). Knows nothing of ESL or FreeSWITCH.

pub mod address;
pub mod deliver;
pub mod delivery_log;
pub mod dispatcher;
pub mod envelope;
mod message;
pub mod redeliver;
pub mod sign;

pub use dispatcher::{DispatcherConfig, Webhook, spawn, start};
pub use sign::{Secret, SecretError, Signer};
