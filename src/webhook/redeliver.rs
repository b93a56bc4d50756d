//! Sending a dead-lettered message again, on the application's request: the event goes back into
//! the outbox, keeping its message id (`webhook-id`), and the dispatcher delivers it in its
//! room's order from there on.

use std::time::Duration;

use crate::conference::AppId;
use crate::store::{DEAD_LETTERS_KEPT, DeadLetter, Store, StoreError};

use super::envelope::message_id;

/// How long a re-delivered message is remembered (a second request for it is refused).
const REMEMBERED: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    #[error("no dead-lettered message with this id")]
    NotDead,
    #[error("this message was already sent again")]
    AlreadyRedelivered,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The message id of a dead letter (a re-delivery keeps the original's).
pub fn letter_id(letter: &DeadLetter) -> String {
    letter
        .event
        .redelivers
        .clone()
        .unwrap_or_else(|| message_id(&letter.outbox_id))
}

/// Puts the dead-lettered message `id` back in the outbox.
pub async fn redeliver<S: Store>(
    store: &S,
    app: &AppId,
    id: &str,
) -> Result<DeadLetter, RedeliverError> {
    let letters = store.dead_letters(app, DEAD_LETTERS_KEPT).await?;
    let letter = letters
        .into_iter()
        .rev()
        .find(|l| letter_id(l) == id)
        .ok_or(RedeliverError::NotDead)?;
    let key = format!("redeliver:{id}:{}", letter.at);
    if store.recall(app, &key).await?.is_some() {
        return Err(RedeliverError::AlreadyRedelivered);
    }
    let mut event = letter.event.clone();
    event.redelivers = Some(id.to_owned());
    store.append_outbox(app, &[event]).await?;
    store.remember(app, &key, "queued", REMEMBERED).await?;
    Ok(letter)
}
