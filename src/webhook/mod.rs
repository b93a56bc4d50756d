//! Webhooks: the envelope applications receive ([`envelope`]), Standard Webhooks signatures
//! ([`sign`]), the address policy for application URLs ([`address`]), one HTTP attempt and its
//! verdict ([`deliver`]), and the per-app dispatcher that drains the store's outbox
//! ([`dispatcher`]). Knows nothing of ESL or FreeSWITCH.

pub mod address;
pub mod deliver;
pub mod dispatcher;
pub mod envelope;
pub mod redeliver;
pub mod sign;

pub use dispatcher::{DispatcherConfig, spawn};
pub use sign::{Secret, SecretError, Signer};
