//! The operations dashboard (issue 20): a page served at `/ui` from assets compiled into the
//! binary, no build step and no CDN. It signs in with an app's id and key (kept in the tab's
//! `sessionStorage` only) or with the operator's key, reads the REST API and follows the app's
//! event stream (`/api/v1/events/stream`, resumed with `Last-Event-ID`) for live updates.
//!
//! Every asset is served with a content hash as its `ETag` (a repeat load is a 304) and a
//! content security policy that admits only this origin's script, style and API.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let etag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            body,
            content_type,
            etag: format!("\"{etag}\""),
        }
    }

    fn answer(&self, headers: &HeaderMap) -> Response {
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == self.etag));
        let mut response = match fresh {
            true => StatusCode::NOT_MODIFIED.into_response(),
            false => self.body.into_response(),
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, etag);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }
}

/// Only this origin's script, style and API; no frames, no forms posted anywhere.
/// Recordings play from `blob:` URLs the page makes of what it fetched with the key.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; media-src blob:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("assets/index.html"),
        "text/html; charset=utf-8",
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
});
static LISTEN: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("assets/listen.js"),
        "text/javascript; charset=utf-8",
    )
});
/// The page's icon, also answered at `/favicon.ico` (where browsers look for one unasked).
static ICON: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("assets/favicon.svg"), "image/svg+xml"));
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("assets/app.css"), "text/css; charset=utf-8"));

/// `/ui` and its assets; no state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|h: HeaderMap| async move { INDEX.answer(&h) }))
        .route("/ui/", get(|h: HeaderMap| async move { INDEX.answer(&h) }))
        .route(
            "/ui/app.js",
            get(|h: HeaderMap| async move { SCRIPT.answer(&h) }),
        )
        .route(
            "/ui/listen.js",
            get(|h: HeaderMap| async move { LISTEN.answer(&h) }),
        )
        .route(
            "/ui/app.css",
            get(|h: HeaderMap| async move { STYLE.answer(&h) }),
        )
        .route(
            "/ui/favicon.svg",
            get(|h: HeaderMap| async move { ICON.answer(&h) }),
        )
        .route(
            "/favicon.ico",
            get(|h: HeaderMap| async move { ICON.answer(&h) }),
        )
}

#[cfg(test)]
mod tests {
    /// The deliveries card's type filter offers every webhook type, in the document's order,
    /// and nothing else (the page has no build step to take them from the code).
    #[test]
    fn the_type_filter_offers_every_webhook_type() {
        let html = include_str!("assets/index.html");
        let start = html
            .find(r#"<select id="webhooks-type">"#)
            .expect("the type filter");
        let select = &html[start..];
        let select = &select[..select.find("</select>").expect("its end")];
        let offered: Vec<&str> = select
            .split(r#"<option value=""#)
            .skip(1)
            .filter_map(|o| o.split('"').next())
            .filter(|v| !v.is_empty())
            .collect();
        let kinds: Vec<&str> = crate::api::openapi::hooks::KINDS
            .iter()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(offered, kinds);
    }
}
