//! Opening the socket to an application's stream server: its URL checked by the same address
//! policy as webhooks (no private, loopback or reserved targets unless the operator allows
//! them), its name resolved and each address checked before connecting (so a name cannot be
//! switched to a private address for the connection), a `wss://` server's certificate verified
//! against the web PKI roots, and the whole opening bounded in time.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};

use crate::webhook::address::is_forbidden;

/// The connection under a stream's socket: to a stream server (plain TCP for `ws://`, TLS for
/// `wss://`), or from a browser listening in (an upgraded HTTP connection).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Longest stream URL accepted.
pub const MAX_URL: usize = 2048;

/// Largest message accepted from a stream server (a second of 16 kHz L16 is 32 KB).
pub const MAX_MESSAGE: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Private, loopback and reserved addresses allowed (tests, the lab).
    pub allow_private: bool,
    /// Only `wss://`.
    pub require_wss: bool,
    /// Resolving, connecting, TLS and the upgrade, all told.
    pub connect_timeout: Duration,
}

/// Why a stream URL is refused before anything is tried (a 400 naming `url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("url must be a wss:// URL (ws:// is not allowed by this server's configuration)")]
    NotWss,
    #[error("url must be a ws:// or wss:// URL with a host")]
    Malformed,
    #[error("url must not carry credentials (send them in parameters)")]
    Credentials,
    #[error("url is longer than {MAX_URL} characters")]
    TooLong,
    #[error("url points at a private, loopback or reserved address")]
    Private,
}

/// Why the socket could not be opened: `code` goes in the stream's `reason`, the text in its
/// `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct OpenFailed {
    pub code: &'static str,
    pub text: String,
}

fn failed(code: &'static str, text: impl Into<String>) -> OpenFailed {
    OpenFailed {
        code,
        text: text.into(),
    }
}

/// Checks a stream URL as given: scheme, host, no credentials, and no IP literal in a forbidden
/// range. A name is checked again once resolved ([`open`]).
pub fn check_url(raw: &str, policy: &Policy) -> Result<url::Url, UrlRefused> {
    if raw.len() > MAX_URL {
        return Err(UrlRefused::TooLong);
    }
    if raw.contains('@')
        && raw
            .split(['/', '?'])
            .nth(2)
            .is_some_and(|a| a.contains('@'))
    {
        return Err(UrlRefused::Credentials);
    }
    if !well_formed(raw) {
        return Err(UrlRefused::Malformed);
    }
    let url = url::Url::parse(raw).map_err(|_| UrlRefused::Malformed)?;
    match url.scheme() {
        "wss" => {}
        "ws" if !policy.require_wss => {}
        "ws" => return Err(UrlRefused::NotWss),
        _ => return Err(UrlRefused::Malformed),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    let host = match url.host() {
        Some(h) => h,
        None => return Err(UrlRefused::Malformed),
    };
    let literal = match host {
        url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal
        && !policy.allow_private
        && is_forbidden(ip)
    {
        return Err(UrlRefused::Private);
    }
    Ok(url)
}

/// The URL's shape as the API documents it (`openapi.json`'s pattern): `ws://` or `wss://`, a
/// host name or IPv4 address of letters, digits, `-` and `.`, an optional port (1–65535), then
/// a path and query of URL characters. Stricter than a URL parser, which takes `ws://a*`.
fn well_formed(raw: &str) -> bool {
    const URL_CHARS: &[u8] = b"._~!$&'()*+,;=:@/%-";
    let Some(rest) = raw
        .strip_prefix("wss://")
        .or_else(|| raw.strip_prefix("ws://"))
    else {
        return false;
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.starts_with('0')
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65_535).contains(&n))
    });
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    let chars_ok = |s: &str, extra: u8| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || URL_CHARS.contains(&b) || b == extra)
    };
    // A name's last label begins with a letter: one that is a number makes the host an IPv4
    // address to a URL parser (`a.b.4` is not one), so only a whole dotted quad may be numeric.
    let last_ok = host
        .rsplit('.')
        .next()
        .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
    let host_ok =
        host.parse::<std::net::Ipv4Addr>().is_ok() || host.split('.').all(label_ok) && last_ok;
    port_ok && host_ok && chars_ok(path, b'/') && chars_ok(query, b'?')
}

/// Opens the socket: resolve, check every address, connect to the first that answers, TLS for
/// `wss://`, then the upgrade; all within `policy.connect_timeout`.
pub async fn open(url: &url::Url, policy: &Policy) -> Result<Socket, OpenFailed> {
    match tokio::time::timeout(policy.connect_timeout, open_now(url, policy)).await {
        Ok(result) => result,
        Err(_) => Err(failed(
            "timeout",
            format!(
                "the stream server did not open the socket within {} ms",
                policy.connect_timeout.as_millis()
            ),
        )),
    }
}

async fn open_now(url: &url::Url, policy: &Policy) -> Result<Socket, OpenFailed> {
    let host = url
        .host_str()
        .ok_or_else(|| failed("bad_url", "no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| failed("unresolved", format!("{host} does not resolve")))?
        .collect();
    let permitted: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| policy.allow_private || !is_forbidden(a.ip()))
        .collect();
    if permitted.is_empty() {
        return Err(failed(
            "address_refused",
            format!("{host} resolves only to private, loopback or reserved addresses"),
        ));
    }
    let mut last = None;
    let mut tcp = None;
    for addr in permitted {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        let why = last.map(|e| e.to_string()).unwrap_or_default();
        failed(
            "unreachable",
            format!("cannot connect to {host}:{port}: {why}"),
        )
    })?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if url.scheme() == "wss" {
        let name = ServerName::try_from(host.clone())
            .map_err(|_| failed("bad_url", format!("{host} is not a TLS server name")))?;
        let tls = TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| failed("tls", format!("TLS with {host} failed: {e}")))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (socket, _) = tokio_tungstenite::client_async_with_config(url.as_str(), io, Some(config()))
        .await
        .map_err(upgrade_failed)?;
    Ok(socket)
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// The socket of a connection the controller upgraded itself (a browser listening in), as the
/// server's end.
pub async fn accepted(io: Box<dyn Io>) -> Socket {
    WebSocketStream::from_raw_socket(io, tungstenite::protocol::Role::Server, Some(config())).await
}

fn upgrade_failed(e: tungstenite::Error) -> OpenFailed {
    match e {
        tungstenite::Error::Http(response) => failed(
            "refused",
            format!(
                "the stream server answered the upgrade with HTTP {}",
                response.status().as_u16()
            ),
        ),
        other => failed("refused", format!("the WebSocket upgrade failed: {other}")),
    }
}

/// TLS as reqwest does it here: rustls with ring, the web PKI roots, certificates verified.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(require_wss: bool, allow_private: bool) -> Policy {
        Policy {
            allow_private,
            require_wss,
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn urls_are_held_to_the_policy() {
        let strict = policy(true, false);
        assert_eq!(
            check_url("ws://example.com/a", &strict),
            Err(UrlRefused::NotWss)
        );
        assert!(check_url("wss://example.com/a?x=1", &strict).is_ok());
        assert_eq!(
            check_url("https://example.com/", &strict),
            Err(UrlRefused::Malformed)
        );
        assert_eq!(
            check_url("wss://u:p@example.com/", &strict),
            Err(UrlRefused::Credentials)
        );
        for private in [
            "wss://127.0.0.1/",
            "wss://10.0.0.1/",
            "wss://169.254.169.254/",
        ] {
            assert_eq!(
                check_url(private, &strict),
                Err(UrlRefused::Private),
                "{private}"
            );
        }
        let lab = policy(false, true);
        assert!(check_url("ws://127.0.0.1:9000/", &lab).is_ok());
        for odd in [
            "ws://0.00.0*",
            "ws://a..b/",
            "ws://-a/",
            "ws://a:0/",
            "ws://a:65536",
            "ws://a/ b",
            "ws://[::1]/",
            "ws://j.W.4:3157",
            "ws://1.2.3/",
        ] {
            assert_eq!(check_url(odd, &lab), Err(UrlRefused::Malformed), "{odd}");
        }
        assert!(check_url("ws://a-b.c:8080/x/y?z=1&w=%20", &lab).is_ok());
        let long = format!("wss://example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(check_url(&long, &strict), Err(UrlRefused::TooLong));
    }
}
