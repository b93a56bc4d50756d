//! Which URLs an app may have a media node fetch (a room's `play`, a member's `announce`, a
//! held member's `music`). The node fetches them itself (mod_http_cache, libcurl), from inside
//! the operator's network, so an app's URL must not reach that network: the same address
//! policy as webhooks ([`crate::webhook::address`]). Loopback, private, link-local (cloud
//! metadata), shared and reserved addresses are refused, and so are the media nodes' own
//! addresses, unless the operator allows private addresses or lists the host.
//!
//! A name is resolved here, and refused if any of its addresses is refused (the node's libcurl
//! may pick any) or if it does not resolve. What this cannot hold, the operator closes with
//! `[playback] allow_hosts`: the node resolves the name again (a name whose answer changes in
//! between, DNS rebinding), and libcurl follows up to 10 redirects (`CURLOPT_FOLLOWLOCATION`,
//! not configurable in mod_http_cache), so a public host can send the node elsewhere. With
//! `allow_hosts`, only the listed hosts are fetched, hosts the operator trusts not to
//! redirect inward; an egress firewall on the nodes is the airtight complement.

use std::net::IpAddr;

use reqwest::Url;

use crate::node::dial_policy::NodeAddresses;

/// The policy (`[playback]` in the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaUrlPolicy {
    /// Private, loopback and reserved addresses allowed (tests, a lab, a trusted network).
    pub allow_private: bool,
    /// When not empty, the only hosts fetched: `host`, `host:port` or `*.example.com`; a
    /// listed host is fetched whatever it resolves to.
    pub allow_hosts: Vec<String>,
    /// A name that does not resolve here passes (the lab, whose simulated node fetches
    /// nothing); refused otherwise.
    pub unresolved_ok: bool,
}

/// Why a URL was refused; [`Refusal::code`] is the stable `detail.reason` of the 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an http(s) URL with a host.
    Malformed,
    /// `allow_hosts` is set and does not list the host.
    NotListed,
    /// The host is, or resolves to, a private, loopback, reserved or media node address.
    Private,
    /// The host does not resolve (in time).
    Unresolved,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::NotListed => "host_not_allowed",
            Refusal::Private => "private_address",
            Refusal::Unresolved => "unresolved",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Malformed => "not an http or https URL with a host",
            Refusal::NotListed => "its host is not one the operator allows",
            Refusal::Private => {
                "its host is a private, loopback, reserved or media node address, or resolves to one"
            }
            Refusal::Unresolved => "its host does not resolve",
        }
    }
}

impl MediaUrlPolicy {
    /// Whether a node may be asked to fetch `url` (already of the API's URL rule); `nodes`
    /// are the media nodes' own addresses, refused unless listed (the dial-out policy's).
    pub async fn check(&self, url: &str, nodes: &NodeAddresses) -> Result<(), Refusal> {
        let parsed = Url::parse(url).map_err(|_| Refusal::Malformed)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refusal::Malformed);
        }
        let host = parsed.host().ok_or(Refusal::Malformed)?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let name = match &host {
            url::Host::Domain(d) => d.to_ascii_lowercase(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        if !self.allow_hosts.is_empty() {
            return if self.listed(&name, port) {
                Ok(())
            } else {
                Err(Refusal::NotListed)
            };
        }
        if nodes.names(&name) {
            return Err(Refusal::Private);
        }
        let found = match host {
            url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
            url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
            url::Host::Domain(d) => resolved(d).await,
        };
        if found.is_empty() {
            return match self.unresolved_ok {
                true => Ok(()),
                false => Err(Refusal::Unresolved),
            };
        }
        let node_ips = nodes.resolved().await;
        let refused = |ip: &IpAddr| {
            node_ips.contains(ip)
                || (!self.allow_private && crate::webhook::address::is_forbidden(*ip))
        };
        match found.iter().any(refused) {
            true => Err(Refusal::Private),
            false => Ok(()),
        }
    }

    fn listed(&self, host: &str, port: u16) -> bool {
        let with_port = format!("{host}:{port}");
        self.allow_hosts.iter().any(|entry| {
            let entry = entry.to_ascii_lowercase();
            match entry.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => entry == host || entry == with_port,
            }
        })
    }
}

/// What libcurl would connect to for `name`: loopback for `localhost` and its subdomains
/// (libcurl answers them itself, RFC 6761, with or without the final dot), else what the
/// name resolves to (none: it does not, in time).
async fn resolved(name: &str) -> Vec<IpAddr> {
    let bare = name.trim_end_matches('.').to_ascii_lowercase();
    if bare == "localhost" || bare.ends_with(".localhost") {
        return vec![IpAddr::from([127, 0, 0, 1])];
    }
    crate::node::dial_policy::resolve(name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> MediaUrlPolicy {
        MediaUrlPolicy::default()
    }

    fn none() -> NodeAddresses {
        NodeAddresses::default()
    }

    /// A node whose Event Socket is at `esl`.
    fn node(esl: &str) -> NodeAddresses {
        let prefix =
            crate::conference::NodePrefix::parse("nd001").unwrap_or_else(|_| unreachable!());
        NodeAddresses::of([&crate::node::NodeConfig::new(prefix, esl, "pw")])
    }

    #[tokio::test]
    async fn internal_addresses_in_every_spelling_are_refused() {
        for url in [
            "http://127.0.0.1:8021/x.wav",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/a.wav",
            "http://192.168.1.1/a.wav",
            "http://0.0.0.0/a.wav",
            "http://[::1]/a.wav",
            "http://[::ffff:127.0.0.1]/a.wav",
            "http://2130706433/a.wav",
            "http://0x7f.1/a.wav",
            "http://localhost/a.wav",
            "http://LOCALHOST./a.wav",
        ] {
            assert_eq!(
                strict().check(url, &none()).await,
                Err(Refusal::Private),
                "{url}"
            );
        }
        assert_eq!(
            strict()
                .check("http://nothing.invalid/a.wav", &none())
                .await,
            Err(Refusal::Unresolved)
        );
        assert_eq!(
            strict().check("https://203.0.113.9/a.wav", &none()).await,
            Err(Refusal::Private)
        );
        assert_eq!(
            strict().check("https://8.8.8.8/a.wav", &none()).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn the_operator_allows_private_addresses_or_lists_hosts_and_nodes_stay_refused() {
        let open = MediaUrlPolicy {
            allow_private: true,
            ..MediaUrlPolicy::default()
        };
        let nodes = node("10.0.0.5:8021");
        assert_eq!(
            open.check("http://127.0.0.1:9/a.wav", &none()).await,
            Ok(())
        );
        assert_eq!(
            open.check("http://10.0.0.5:8080/a.wav", &nodes).await,
            Err(Refusal::Private)
        );
        assert_eq!(
            open.check("http://10.0.0.6:8080/a.wav", &nodes).await,
            Ok(()),
            "another private address: allowed"
        );
        // A node named in its Event Socket address is its own, resolved or not.
        assert_eq!(
            open.check("http://FS1.internal:8080/a.wav", &node("fs1.internal:8021"))
                .await,
            Err(Refusal::Private)
        );
        let listed = MediaUrlPolicy {
            allow_hosts: vec![
                "media.internal".into(),
                "*.cdn.example".into(),
                "127.0.0.1:8088".into(),
            ],
            ..MediaUrlPolicy::default()
        };
        assert_eq!(
            listed.check("https://MEDIA.internal/a.wav", &none()).await,
            Ok(())
        );
        assert_eq!(
            listed.check("https://eu.cdn.example/a.wav", &none()).await,
            Ok(())
        );
        assert_eq!(
            listed.check("http://127.0.0.1:8088/a.wav", &none()).await,
            Ok(())
        );
        assert_eq!(
            listed.check("http://127.0.0.1:8089/a.wav", &none()).await,
            Err(Refusal::NotListed)
        );
        assert_eq!(
            listed.check("https://cdn.example/a.wav", &none()).await,
            Err(Refusal::NotListed)
        );
        assert_eq!(
            listed.check("https://8.8.8.8/a.wav", &none()).await,
            Err(Refusal::NotListed)
        );
    }

    #[tokio::test]
    async fn the_lab_lets_an_unresolved_name_pass_but_not_an_internal_one() {
        let lab = MediaUrlPolicy {
            unresolved_ok: true,
            ..MediaUrlPolicy::default()
        };
        assert_eq!(
            lab.check("https://nothing.invalid/a.wav", &none()).await,
            Ok(())
        );
        assert_eq!(
            lab.check("http://localhost/a.wav", &none()).await,
            Err(Refusal::Private)
        );
    }
}
