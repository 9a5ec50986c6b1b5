//! Proxies from the conventional environment variables, read when
//! [`ClientConfig::proxy_from_env`](crate::ClientConfig::proxy_from_env) asks for them.
//!
//! - `mqtts://` and `wss://` brokers use `https_proxy` / `HTTPS_PROXY`; `mqtt://` and `ws://`
//!   use `http_proxy` / `HTTP_PROXY`; either falls back to `all_proxy` / `ALL_PROXY`. The
//!   lower-case spelling wins when both are set (as curl reads them).
//! - `no_proxy` / `NO_PROXY` lists hosts reached directly, comma- or space-separated: `*`
//!   (every host), a host name (itself and its subdomains; a leading `.` or `*.` is
//!   ignored), an IP address, or an IP network in CIDR notation (`10.0.0.0/8`), each
//!   optionally with `:port` to match that port only. Case does not matter.
//! - An empty variable counts as unset.

use std::net::IpAddr;

use super::{Proxy, ProxyError};
use crate::uri::Target;

/// The proxy variables read at one `connect`.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvProxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    all: Option<Proxy>,
    no_proxy: Vec<String>,
}

impl EnvProxies {
    /// Reads the variables through `var` (`std::env::var` in production; a map in tests).
    pub(crate) fn read(var: impl Fn(&str) -> Option<String>) -> Result<Self, ProxyError> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let get = |name: &str| set(&name.to_ascii_lowercase()).or_else(|| set(name));
        let proxy = |name: &str| get(name).map(|url| Proxy::parse(url.trim())).transpose();
        Ok(Self {
            http: proxy("HTTP_PROXY")?,
            https: proxy("HTTPS_PROXY")?,
            all: proxy("ALL_PROXY")?,
            no_proxy: get("NO_PROXY")
                .map(|list| {
                    list.split([',', ' '])
                        .map(|entry| entry.trim().to_ascii_lowercase())
                        .filter(|entry| !entry.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The proxy for `target`, if any.
    pub(crate) fn for_target(&self, target: &Target) -> Option<&Proxy> {
        // The variables name HTTP / SOCKS proxies for TCP: they never carry QUIC's UDP.
        if target.scheme.is_quic() {
            return None;
        }
        if self
            .no_proxy
            .iter()
            .any(|entry| no_proxy_matches(entry, &target.host, target.port))
        {
            return None;
        }
        let by_scheme = if target.scheme.is_tls() {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        };
        by_scheme.or(self.all.as_ref())
    }
}

/// Whether one `NO_PROXY` entry (lower case) covers `host:port`.
fn no_proxy_matches(entry: &str, host: &str, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    let (pattern, entry_port) = split_port(entry);
    if entry_port.is_some_and(|entry_port| entry_port != port) {
        return false;
    }
    let host = host.to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip_matches(pattern, ip);
    }
    let domain = pattern.trim_start_matches("*.").trim_start_matches('.');
    !domain.is_empty()
        && (host == domain
            || host
                .strip_suffix(domain)
                .is_some_and(|prefix| prefix.ends_with('.')))
}

/// `pattern[:port]`, where an IPv6 pattern may be bracketed (`[::1]:1883`).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address (or network).
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// Whether `ip` is the address `pattern` or in the network `pattern` (CIDR).
fn ip_matches(pattern: &str, ip: IpAddr) -> bool {
    let (address, prefix) = match pattern.split_once('/') {
        Some((address, prefix)) => match prefix.parse::<u32>() {
            Ok(prefix) => (address, Some(prefix)),
            Err(_) => return false,
        },
        None => (pattern, None),
    };
    let Ok(network) = address.parse::<IpAddr>() else {
        return false;
    };
    match (network, ip) {
        (IpAddr::V4(network), IpAddr::V4(ip)) => {
            prefix_matches(&network.octets(), &ip.octets(), prefix.unwrap_or(32))
        }
        (IpAddr::V6(network), IpAddr::V6(ip)) => {
            prefix_matches(&network.octets(), &ip.octets(), prefix.unwrap_or(128))
        }
        _ => false,
    }
}

/// Whether the first `bits` bits of `a` and `b` agree (a prefix beyond their length never does).
fn prefix_matches(a: &[u8], b: &[u8], bits: u32) -> bool {
    let Ok(bits) = usize::try_from(bits) else {
        return false;
    };
    if bits > a.len() * 8 {
        return false;
    }
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xFFu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;
    use crate::proxy::ProxyKind;

    fn env(pairs: &[(&str, &str)]) -> EnvProxies {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EnvProxies::read(|name| map.get(name).cloned()).unwrap()
    }

    fn target(uri: &str) -> Target {
        Target::parse(uri).unwrap()
    }

    fn kind(env: &EnvProxies, uri: &str) -> Option<(ProxyKind, u16)> {
        env.for_target(&target(uri))
            .map(|proxy| (proxy.kind(), proxy.port()))
    }

    // `mqtts://` targets parse only with the `tls` feature (CI also runs these tests without it).
    #[cfg(feature = "tls")]
    #[test]
    fn tls_brokers_use_https_proxy_plain_ones_http_proxy_else_all_proxy() {
        let vars = env(&[
            ("HTTPS_PROXY", "http://p:3128"),
            ("http_proxy", "http://p:8080"),
            ("ALL_PROXY", "socks5://p:1080"),
        ]);
        assert_eq!(kind(&vars, "mqtts://b"), Some((ProxyKind::Http, 3128)));
        assert_eq!(kind(&vars, "mqtt://b"), Some((ProxyKind::Http, 8080)));
        let vars = env(&[("ALL_PROXY", "socks5://p:1080")]);
        for uri in ["mqtt://b", "mqtts://b"] {
            assert_eq!(kind(&vars, uri), Some((ProxyKind::Socks5, 1080)), "{uri}");
        }
        assert_eq!(kind(&env(&[]), "mqtt://b"), None);
    }

    #[test]
    fn lower_case_wins_and_empty_counts_as_unset() {
        let vars = env(&[
            ("all_proxy", "socks5://lower:1"),
            ("ALL_PROXY", "socks5://upper:2"),
        ]);
        assert_eq!(kind(&vars, "mqtt://b"), Some((ProxyKind::Socks5, 1)));
        let vars = env(&[("all_proxy", " "), ("ALL_PROXY", "socks5://upper:2")]);
        assert_eq!(kind(&vars, "mqtt://b"), Some((ProxyKind::Socks5, 2)));
    }

    #[test]
    fn no_proxy_matches_hosts_domains_addresses_networks_and_ports() {
        let vars = env(&[
            ("ALL_PROXY", "socks5://p:1080"),
            (
                "NO_PROXY",
                "localhost, .internal.example,10.0.0.0/8 ,::1,broker.lan:8883,[fd00::1]:1883",
            ),
        ]);
        for direct in [
            "mqtt://localhost",
            "mqtt://LOCALHOST",
            "mqtt://a.internal.example",
            "mqtt://internal.example",
            "mqtt://10.1.2.3",
            "mqtt://[::1]",
            "mqtt://broker.lan:8883",
            "mqtt://[fd00::1]",
        ] {
            assert_eq!(kind(&vars, direct), None, "{direct} goes direct");
        }
        for proxied in [
            "mqtt://notlocalhost",
            "mqtt://xinternal.example",
            "mqtt://11.0.0.1",
            "mqtt://broker.lan",
            "mqtt://[fd00::1]:1884",
            "mqtt://127.0.0.1",
        ] {
            assert!(kind(&vars, proxied).is_some(), "{proxied} goes through");
        }
        let vars = env(&[("ALL_PROXY", "socks5://p:1080"), ("no_proxy", "*")]);
        assert_eq!(kind(&vars, "mqtt://anything"), None);
    }

    #[test]
    fn a_bad_proxy_variable_is_an_error() {
        let err = EnvProxies::read(|name| (name == "ALL_PROXY").then(|| "ftp://p".into()));
        assert!(matches!(err, Err(ProxyError::InvalidUrl(_))), "{err:?}");
    }
}
