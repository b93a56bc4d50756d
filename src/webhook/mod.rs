//! Webhooks: the envelope applications receive ([`envelope`]), Standard Webhooks signatures
//! ([`sign`]), the address policy for application URLs ([`address`]), one HTTP attempt and its
//! verdict ([`deliver`]), one message's attempts until a verdict (`message`), and the per-app
//! dispatcher that drains the store's outbox ([`dispatcher`]). Knows nothing of ESL or FreeSWITCH.

pub mod address;
pub mod deliver;
pub mod dispatcher;
pub mod envelope;
mod message;
pub mod redeliver;
pub mod sign;

pub use dispatcher::{DispatcherConfig, Webhook, spawn, start};
pub use sign::{Secret, SecretError, Signer};
