//! The REST API of the contract (seed 004): axum routers, one per resource, with thin handlers
//! over the room service. Auth, validation, cursors, rate-limit answers and the error body live
//! here; ESL wire details do not.

pub mod admission;
pub mod announce;
pub mod auth;
pub mod coach;
pub mod conferences;
pub mod cursor;
pub mod drain;
pub mod error;
pub mod events;
pub mod extract;
pub mod forward;
pub mod health;
pub mod lab;
mod levels;
pub mod listen;
pub mod media_url;
mod metadata;
pub mod metrics;
mod moderation;
mod moving;
pub mod nodes;
pub mod openapi;
pub mod participants;
pub mod playback;
pub mod recordings;
pub mod request_id;
pub mod resource;
pub mod sessions;
pub mod streams;
pub mod switches;
pub mod throttle;
pub mod views;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use auth::{AppKeys, Caller, GlobalLimiter, Operator, hash_key};
pub use cursor::Cursors;
pub use error::ApiError;

use crate::rooms::Rooms;
use crate::store::Store;

/// How the API behaves beyond the room service.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Signs pagination cursors; `None` = a random secret for this process.
    pub cursor_secret: Option<Vec<u8>>,
    /// Requests per second per application (0 = no global limit), and the burst allowed.
    pub global_rate: f64,
    pub global_burst: f64,
    /// How long a caught-up event stream (`/api/v1/events/stream`) waits for the outbox to
    /// grow before it reads anyway (it wakes at once on an append).
    pub stream_waits: crate::store::bell::Waits,
    /// What a request must pass before a handler works on it: the bound on requests at
    /// once, each app's share of it, event streams per app, the body's time limit, the
    /// wrong-key throttle ([`admission`]).
    pub admission: admission::AdmissionLimits,
    /// Which URLs a node may be asked to fetch (play, announce, hold music; see [`media_url`]).
    pub media_urls: media_url::MediaUrlPolicy,
    /// Whether `/metrics` is served on the API's port (with the operator's key); false when
    /// `metrics_listen` serves it on an address of its own ([`metrics`]).
    pub metrics_on_api: bool,
    /// In a fleet: where member commands go to the instance that applies their node
    /// ([`forward`]); `None` serves every command here.
    pub forwarding: Option<forward::Forwarding>,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            cursor_secret: None,
            global_rate: 100.0,
            global_burst: 200.0,
            stream_waits: crate::store::bell::Waits::default(),
            admission: admission::AdmissionLimits::default(),
            media_urls: media_url::MediaUrlPolicy::default(),
            metrics_on_api: true,
            forwarding: None,
        }
    }
}

struct Shared<S> {
    rooms: Rooms<S>,
    /// Replaced whole by a configuration reload; a request checks the keys of the moment.
    keys: arc_swap::ArcSwap<AppKeys>,
    cursors: Cursors,
    limiter: GlobalLimiter,
    lab: Option<lab::LabNodes>,
    stream_waits: crate::store::bell::Waits,
    /// The requests worked on now, their bounds and the wrong-key throttle ([`admission`]).
    admission: admission::Admission,
    media_urls: media_url::MediaUrlPolicy,
    metrics_on_api: bool,
    forwarding: Option<forward::Forwarding>,
}

/// What every handler gets: the room service, the app keys, the cursor signer, the limiter.
pub struct ApiState<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for ApiState<S> {
    fn clone(&self) -> ApiState<S> {
        ApiState {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Store> ApiState<S> {
    pub fn new(rooms: Rooms<S>, keys: AppKeys, options: ApiOptions) -> ApiState<S> {
        ApiState::build(rooms, keys, options, None)
    }

    /// The lab's state: the same API plus the simulated nodes that `/lab/v1/calls` drives.
    pub fn with_lab(
        rooms: Rooms<S>,
        keys: AppKeys,
        options: ApiOptions,
        lab: lab::LabNodes,
    ) -> ApiState<S> {
        ApiState::build(rooms, keys, options, Some(lab))
    }

    fn build(
        rooms: Rooms<S>,
        keys: AppKeys,
        options: ApiOptions,
        lab: Option<lab::LabNodes>,
    ) -> ApiState<S> {
        let cursors = match &options.cursor_secret {
            Some(secret) => Cursors::new(secret),
            None => Cursors::random(),
        };
        ApiState {
            shared: Arc::new(Shared {
                rooms,
                keys: arc_swap::ArcSwap::from_pointee(keys),
                cursors,
                limiter: GlobalLimiter::new(options.global_rate, options.global_burst),
                lab,
                stream_waits: options.stream_waits,
                admission: admission::Admission::new(options.admission),
                media_urls: options.media_urls,
                metrics_on_api: options.metrics_on_api,
                forwarding: options.forwarding,
            }),
        }
    }

    pub fn rooms(&self) -> &Rooms<S> {
        &self.shared.rooms
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<AppKeys> {
        self.shared.keys.load_full()
    }

    /// Replaces the keys (a configuration reload): requests already authenticated go on.
    pub fn set_keys(&self, keys: AppKeys) {
        self.shared.keys.store(Arc::new(keys));
    }

    pub fn cursors(&self) -> &Cursors {
        &self.shared.cursors
    }

    pub fn limiter(&self) -> &GlobalLimiter {
        &self.shared.limiter
    }

    /// Where member commands go in a fleet ([`forward`]).
    pub fn forwarding(&self) -> Option<&forward::Forwarding> {
        self.shared.forwarding.as_ref()
    }

    pub fn lab(&self) -> Option<&lab::LabNodes> {
        self.shared.lab.as_ref()
    }

    /// Refuses, as a 400 naming the reason, a URL a node must not be asked to fetch.
    pub async fn fetchable(&self, field: &str, url: &str) -> Result<(), ApiError> {
        let nodes = crate::node::dial_policy::NodeAddresses::of(
            self.rooms().pool().nodes().iter().map(|n| &*n.config),
        );
        self.shared
            .media_urls
            .check(url, &nodes)
            .await
            .map_err(|refusal| {
                ApiError::bad_request_with(
                    format!("Refused {field}: {}", refusal.message()),
                    serde_json::json!({
                        field: url.chars().take(256).collect::<String>(),
                        "reason": refusal.code(),
                    }),
                )
            })
    }

    pub fn stream_waits(&self) -> crate::store::bell::Waits {
        self.shared.stream_waits
    }
}

/// The whole HTTP surface: `/api/v1/…`, `/healthz`, `/readyz`, `/metrics`, and `/lab/v1/…` when
/// the state has lab nodes. Every request is counted and timed (see [`metrics`]), and every
/// answer carries an `X-Request-Id` that the request's log lines carry too (see [`request_id`]).
pub fn router<S: Store>(state: ApiState<S>) -> Router {
    let mut router = Router::new()
        .merge(conferences::routes())
        .merge(sessions::routes())
        .merge(switches::routes())
        .merge(announce::routes())
        .merge(coach::routes())
        .merge(participants::routes())
        .merge(playback::routes())
        .merge(metadata::routes())
        .merge(moderation::routes())
        .merge(levels::routes())
        .merge(moving::routes())
        .merge(recordings::routes())
        .merge(streams::routes())
        .merge(listen::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(resource::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(nodes::routes())
        .merge(drain::routes())
        .merge(openapi::routes())
        .merge(crate::ui::routes());
    if state.lab().is_some() {
        router = router.merge(lab::routes());
    }
    router
        .fallback(|| async { ApiError::NotFound("Not found".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward::<S>,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admission::admit::<S>,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}
