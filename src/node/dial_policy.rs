//! Where an app may dial out to and which caller ids it may present (issue 56): the policy of
//! one app's configuration (`dialout_hosts`, `dialout_numbers`, `caller_ids`), and the check
//! that `"*"` reaches public hosts only. It decides; it does not dial (`dialout` builds the
//! originate) and it does not word HTTP answers.
//!
//! A host listed by name (`host`, or `host:port` for that port only) is dialed whatever it is:
//! the operator's choice. `"*"` allows any other host that is public and no media node's: an IP
//! literal in a private, loopback, link-local (cloud metadata), shared, multicast or reserved
//! range ([`crate::webhook::address::is_forbidden`]) is refused, and so is a node's own address
//! (its Event Socket host, resolved when a name, and its `node_sip`); a name is resolved at
//! dial time and refused if any of its addresses is, or if it does not resolve within
//! [`RESOLVE_TIMEOUT`]. FreeSWITCH's sofia resolves the name again when it sends the INVITE,
//! and follows NAPTR and SRV records for a host without a port: a name whose answer changes in
//! between (DNS rebinding), or whose SRV records point inward, is not caught here. An operator
//! who needs it airtight lists the hosts by name instead of `"*"` (and filters the nodes'
//! egress).

use std::net::IpAddr;
use std::time::Duration;

use super::NodeConfig;
use super::dialout::{Destination, DestinationError};
use crate::webhook::address::is_forbidden;

/// How long a name may take to resolve before the dial-out is refused as unresolved.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// One app's dial-out permissions, from its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialPolicy {
    /// SIP hosts: `host`, `host:port`, or `*` (any public host that is no media node's).
    pub hosts: Vec<String>,
    /// Number prefixes dialed through a gateway: `+1555`, or `*` (any).
    pub numbers: Vec<String>,
    /// The caller ids it may present: exact numbers, prefixes ending in `*` (`+1555*`), or `*`
    /// (any). Empty: none (the node's default is shown).
    pub caller_ids: Vec<String>,
}

/// How far a destination is allowed by the policy alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Listed by name (or a number its prefixes allow): dialed as it is.
    Listed,
    /// Only `*` allows it: the host must be public and no media node's ([`check_public`]).
    IfPublic(String),
    NotAllowed,
}

impl DialPolicy {
    /// What the configuration alone says of `to`.
    pub fn reach(&self, to: &Destination) -> Reach {
        match to {
            Destination::Sip { host, port, .. } => {
                let with_port = port.map(|p| format!("{host}:{p}"));
                let named = self.hosts.iter().any(|h| {
                    let h = h.to_ascii_lowercase();
                    h == *host || with_port.as_ref() == Some(&h)
                });
                match (named, self.hosts.iter().any(|h| h == "*")) {
                    (true, _) => Reach::Listed,
                    (false, true) => Reach::IfPublic(host.clone()),
                    (false, false) => Reach::NotAllowed,
                }
            }
            Destination::Number(n) => match self
                .numbers
                .iter()
                .any(|p| p == "*" || n.starts_with(p.as_str()))
            {
                true => Reach::Listed,
                false => Reach::NotAllowed,
            },
        }
    }

    /// Whether the app may show `number` to the called party.
    pub fn may_present(&self, number: &str) -> bool {
        self.caller_ids.iter().any(|c| match c.strip_suffix('*') {
            Some(prefix) => number.starts_with(prefix),
            None => c == number,
        })
    }
}

/// Whether `entry` is a valid `caller_ids` entry: a number (`+` and up to 32 digits), such a
/// number's start followed by `*`, or `*`.
pub fn caller_id_pattern_ok(entry: &str) -> bool {
    match entry.strip_suffix('*') {
        Some(prefix) => {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => super::dialout::number_ok(entry),
    }
}

/// The media nodes' own addresses, which `*` never reaches: each node's Event Socket host (an
/// address, or a name resolved at dial time) and its `node_sip` address. The controller does
/// not know what other addresses a node's SIP profiles listen on; list hosts by name to close
/// those too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    ips: Vec<IpAddr>,
    /// Event Socket hosts given as names, lower-cased.
    names: Vec<String>,
}

impl NodeAddresses {
    pub fn of<'a>(nodes: impl IntoIterator<Item = &'a NodeConfig>) -> NodeAddresses {
        let mut out = NodeAddresses::default();
        for node in nodes {
            let host = esl_host(&node.addr);
            match host.parse::<IpAddr>() {
                Ok(ip) => out.ips.push(ip),
                Err(_) if !host.is_empty() => out.names.push(host.to_ascii_lowercase()),
                Err(_) => {}
            }
            out.ips.extend(node.node_sip.map(|a| a.ip()));
        }
        out
    }

    /// Whether `host` (lower-cased) is a node's Event Socket host, by name.
    pub fn names(&self, host: &str) -> bool {
        self.names.iter().any(|n| n == host)
    }

    /// The addresses now, the names' resolved (a name that does not resolve adds none).
    pub async fn resolved(&self) -> Vec<IpAddr> {
        let names = futures_util::future::join_all(self.names.iter().map(|n| resolve(n))).await;
        self.ips
            .iter()
            .copied()
            .chain(names.into_iter().flatten())
            .collect()
    }
}

/// The host of an Event Socket address (`host:port`, `[v6]:port`, or a bare host).
fn esl_host(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (host.starts_with('[') || !host.contains(':')) =>
        {
            host
        }
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The addresses `host` resolves to within [`RESOLVE_TIMEOUT`] (none: it does not).
pub async fn resolve(host: &str) -> Vec<IpAddr> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    }
}

/// The `*` check: `host` (an IPv4 literal or a name, as [`Destination::parse`] gives it) must
/// be, or resolve only to, public addresses that are no media node's. `unresolved_ok`: a name
/// that does not resolve passes (the lab, whose simulated nodes dial nobody).
pub async fn check_public(
    host: &str,
    nodes: &NodeAddresses,
    unresolved_ok: bool,
) -> Result<(), DestinationError> {
    if nodes.names(host) {
        return Err(DestinationError::Internal);
    }
    let found = async {
        match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => resolve(host).await,
        }
    };
    let (found, node_ips) = tokio::join!(found, nodes.resolved());
    if found.is_empty() {
        return match unresolved_ok {
            true => Ok(()),
            false => Err(DestinationError::Unresolved),
        };
    }
    match found
        .iter()
        .any(|ip| is_forbidden(*ip) || node_ips.contains(ip))
    {
        true => Err(DestinationError::Internal),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::NodePrefix;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    fn hosts(h: &[&str]) -> DialPolicy {
        DialPolicy {
            hosts: strings(h),
            ..DialPolicy::default()
        }
    }

    fn sip(to: &str) -> Destination {
        Destination::parse(to).unwrap()
    }

    fn node(esl: &str, node_sip: Option<&str>) -> NodeConfig {
        let mut c = NodeConfig::new(NodePrefix::parse("abcde").unwrap(), esl, "ClueCon");
        c.node_sip = node_sip.map(|a| a.parse().unwrap());
        c
    }

    /// The policy's whole verdict on `to`, as the room service reaches it.
    async fn verdict(
        policy: &DialPolicy,
        to: &str,
        nodes: &NodeAddresses,
    ) -> Result<(), DestinationError> {
        match policy.reach(&sip(to)) {
            Reach::Listed => Ok(()),
            Reach::NotAllowed => Err(DestinationError::NotAllowed(to.into())),
            Reach::IfPublic(host) => check_public(&host, nodes, false).await,
        }
    }

    #[test]
    fn a_destination_is_reached_only_as_the_configuration_says() {
        let to = sip("sip:100@pbx.example.com:5080");
        assert_eq!(hosts(&["PBX.example.com"]).reach(&to), Reach::Listed);
        assert_eq!(hosts(&["pbx.example.com:5080"]).reach(&to), Reach::Listed);
        assert_eq!(
            hosts(&["pbx.example.com:5060"]).reach(&to),
            Reach::NotAllowed
        );
        assert_eq!(
            hosts(&["pbx.example.com:5060", "*"]).reach(&to),
            Reach::IfPublic("pbx.example.com".into())
        );
        let numbers = DialPolicy {
            hosts: strings(&["*"]),
            numbers: strings(&["+1555"]),
            ..DialPolicy::default()
        };
        assert_eq!(numbers.reach(&sip("+15551234567")), Reach::Listed);
        assert_eq!(numbers.reach(&sip("+4930123456")), Reach::NotAllowed);
        assert_eq!(hosts(&["*"]).reach(&sip("+15551234567")), Reach::NotAllowed);
        assert_eq!(
            DialPolicy {
                numbers: strings(&["*"]),
                ..DialPolicy::default()
            }
            .reach(&sip("+4930123456")),
            Reach::Listed
        );
    }

    #[tokio::test]
    async fn any_host_means_public_hosts_that_are_no_media_nodes() {
        let nodes = NodeAddresses::of(&[
            node("203.0.113.80:8021", Some("198.51.100.7:5070")),
            node("8.8.4.4:8021", None),
            node("fs-east.internal:8021", None),
        ]);
        let any = hosts(&["*"]);
        for to in [
            "sip:100@127.0.0.1:5080",
            "sip:100@10.1.2.3",
            "sip:100@192.168.1.1",
            "sip:100@169.254.169.254",
            "sip:100@100.64.0.1",
            "sip:100@0.0.0.0",
            "sip:100@8.8.4.4:5060",
            "sip:100@fs-east.internal",
            "sip:100@localhost",
        ] {
            assert_eq!(
                verdict(&any, to, &nodes).await,
                Err(DestinationError::Internal),
                "{to}"
            );
        }
        // A public address that is no node's is dialed.
        assert_eq!(verdict(&any, "sip:100@1.1.1.1:5060", &nodes).await, Ok(()));
        // A name that does not resolve is refused (`.invalid` never does, RFC 2606).
        assert_eq!(
            verdict(&any, "sip:100@pbx.switchyard.invalid", &nodes).await,
            Err(DestinationError::Unresolved)
        );
        assert_eq!(
            check_public("pbx.switchyard.invalid", &nodes, true).await,
            Ok(())
        );
        // Listed by name, a private host or a node is the operator's choice.
        let listed = hosts(&["*", "127.0.0.1:5080", "10.1.2.3", "8.8.4.4", "localhost"]);
        for to in [
            "sip:100@127.0.0.1:5080",
            "sip:100@10.1.2.3:5060",
            "sip:100@8.8.4.4",
            "sip:100@localhost",
        ] {
            assert_eq!(verdict(&listed, to, &nodes).await, Ok(()), "{to}");
        }
        assert_eq!(
            verdict(&listed, "sip:100@127.0.0.1:5060", &nodes).await,
            Err(DestinationError::Internal)
        );
    }

    #[tokio::test]
    async fn a_node_s_event_socket_and_node_to_node_addresses_are_its_own() {
        // Public, so only being a node's refuses them.
        let nodes = NodeAddresses::of(&[
            node("1.0.0.1:8021", Some("9.9.9.9:5070")),
            node("[2606:4700::1111]:8021", None),
        ]);
        let any = hosts(&["*"]);
        for to in ["sip:a@1.0.0.1:5060", "sip:a@9.9.9.9:5080"] {
            assert_eq!(
                verdict(&any, to, &nodes).await,
                Err(DestinationError::Internal),
                "{to}"
            );
        }
        assert_eq!(
            nodes.ips,
            [
                "1.0.0.1".parse::<IpAddr>().unwrap(),
                "9.9.9.9".parse().unwrap(),
                "2606:4700::1111".parse().unwrap()
            ]
        );
        assert_eq!(verdict(&any, "sip:a@1.1.1.1", &nodes).await, Ok(()));
        let named = NodeAddresses::of(&[node("FS1.example:8021", None), node("fs2", None)]);
        assert_eq!(named.names, ["fs1.example", "fs2"]);
        assert!(named.ips.is_empty());
    }

    #[test]
    fn caller_ids_are_exact_numbers_prefixes_or_any() {
        let policy = |ids: &[&str]| DialPolicy {
            caller_ids: strings(ids),
            ..DialPolicy::default()
        };
        let exact = policy(&["+15551230000"]);
        assert!(exact.may_present("+15551230000"));
        assert!(!exact.may_present("+155512300001"));
        assert!(!exact.may_present("15551230000"));
        let prefix = policy(&["+1555*", "4420"]);
        assert!(prefix.may_present("+15550001111"));
        assert!(prefix.may_present("4420"));
        assert!(!prefix.may_present("+14440001111"));
        assert!(!prefix.may_present("44201"));
        assert!(policy(&["*"]).may_present("+4930123456"));
        // None given: none may be presented.
        assert!(!policy(&[]).may_present("+15551230000"));
        for ok in ["*", "+*", "+1555*", "+15551230000", "15551230000", "1*"] {
            assert!(caller_id_pattern_ok(ok), "{ok}");
        }
        for bad in ["", "+", "1*2", "**", "+1 555*", "abc", "+1555**", "*1"] {
            assert!(!caller_id_pattern_ok(bad), "{bad}");
        }
    }
}
