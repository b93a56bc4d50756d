//! Which addresses a webhook may be sent to. Application-supplied URLs must not reach the
//! controller's own network: loopback, private, link-local (including the cloud metadata address
//! 169.254.169.254), shared, multicast and reserved ranges are refused unless the configuration
//! allows them (`allow_private`, for tests and the lab).
//!
//! The check happens after DNS resolution, in the HTTP client's resolver ([`CheckedResolver`]),
//! and the client connects only to the addresses that passed, so a name that resolves to a public
//! address when checked cannot be switched to a private one for the connection. URLs with an IP
//! literal never reach a resolver; [`check_url`] covers them before a request is made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A webhook URL that may not be used. Its `Display` names the host, never credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefused {
    #[error("webhook host {0} resolves only to private, loopback or reserved addresses")]
    Private(String),
    #[error("webhook host {0} does not resolve")]
    Unresolved(String),
    #[error("webhook URL is not http(s) with a host")]
    BadUrl,
}

/// True for the addresses a webhook must not reach by default.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        let [.., hi, lo] = seg;
        return is_forbidden_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local, incl. fd00:ec2::254 (metadata)
        || (seg[0] & 0xffc0) == 0xfe80 // link-local
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || seg[..6] == [0; 6] // IPv4-compatible (deprecated) and the rest of ::/96
}

/// Refuses a URL that is not http(s), or whose host is an IP literal in a forbidden range.
pub fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), AddressRefused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AddressRefused::BadUrl);
    }
    let host = url.host_str().ok_or(AddressRefused::BadUrl)?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = literal.parse::<IpAddr>() else {
        return Ok(()); // a name: checked by the resolver after resolution
    };
    if !allow_private && is_forbidden(ip) {
        return Err(AddressRefused::Private(ip.to_string()));
    }
    Ok(())
}

/// The HTTP client's resolver: the system resolver, then only the permitted addresses.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| AddressRefused::Unresolved(host.clone()))?
                .collect();
            if found.is_empty() {
                return Err(AddressRefused::Unresolved(host).into());
            }
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || !is_forbidden(a.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(AddressRefused::Private(host).into());
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

/// The [`AddressRefused`] somewhere in an error's source chain, if the resolver refused.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<AddressRefused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            return Some(refused.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn private_and_special_ranges_are_forbidden_public_ones_are_not() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_before_any_request() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_url(&url("http://169.254.169.254/latest"), false).is_err());
        assert!(check_url(&url("http://[::1]:8080/"), false).is_err());
        assert!(check_url(&url("http://127.0.0.1:9/"), true).is_ok());
        assert!(check_url(&url("https://hooks.example.com/x"), false).is_ok());
        assert_eq!(
            check_url(&url("ftp://example.com/"), true),
            Err(AddressRefused::BadUrl)
        );
    }
}
