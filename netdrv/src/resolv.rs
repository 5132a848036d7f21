//! `/etc/resolv.conf` for a task's container, as dockerd 20.10 (the
//! reference daemon) writes it for swarm tasks.
//!
//! dockerd builds the file in steps, and the steps leave traces a user can
//! see, so they are reproduced rather than summarized:
//!
//! 1. At sandbox creation the host's file is filtered with IPv6 assumed on:
//!    localhost nameservers (`127.x.x.x`, `::1`) are dropped, and when no
//!    nameserver is left Google's public resolvers are appended (IPv4 and
//!    IPv6).
//! 2. When the first endpoint joins, the file is filtered again with the
//!    network's IPv6 setting, off for swarm overlays: IPv6 nameservers go.
//! 3. If the sandbox uses the embedded DNS server (any endpoint on a
//!    user-defined network), the file is rebuilt: the host's `search` line,
//!    `nameserver 127.0.0.11` plus any IPv6 nameservers left, and the host's
//!    `options` with `ndots:0` appended unless the host already sets ndots.
//!
//! The parsing (regular expressions, "the last search/options line wins",
//! comments from `#`) follows libnetwork's `resolvconf` package.

use std::net::Ipv4Addr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

/// The embedded DNS server's address inside every task namespace.
pub const EMBEDDED_DNS: &str = "127.0.0.11";

/// Where the host's resolver configuration normally lives.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where systemd-resolved keeps the upstream servers when `/etc/resolv.conf`
/// only names its local stub.
const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

const DEFAULT_IPV4_DNS: [&str; 2] = ["nameserver 8.8.8.8", "nameserver 8.8.4.4"];
const DEFAULT_IPV6_DNS: [&str; 2] = [
    "nameserver 2001:4860:4860::8888",
    "nameserver 2001:4860:4860::8844",
];

const IPV4: &str =
    r"((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";
const IPV6: &str = r"([0-9A-Fa-f]{0,4}:){2,7}([0-9A-Fa-f]{0,4})(%[0-9A-Za-z_]+)?";

// Go's RE2 `\s` is ASCII; Rust's is Unicode, so the class is spelled out.
const S: &str = r"[\t\n\f\r ]";
const NS: &str = r"[^\t\n\f\r ]";

static LOCALHOST_NS: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?m)^nameserver{S}+((127\.([0-9]{{1,3}}\.){{2}}[0-9]{{1,3}})|(::1)$){S}*\n*"
    ))
});
static IPV6_NS: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"(?m)^nameserver{S}+{IPV6}{S}*\n*")));
static NS_ANY: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"^{S}*nameserver{S}*(({IPV4})|({IPV6})){S}*$")));
static NS_V6: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"^{S}*nameserver{S}*(({IPV6})){S}*$")));
static SEARCH: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"^{S}*search{S}*(({NS}+{S}*)*)$")));
static OPTIONS: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"^{S}*options{S}*(({NS}+{S}*)*)$")));

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this module, checked by its tests.
    Regex::new(pattern).expect("resolv.conf pattern compiles")
}

/// The file a task's container gets, from the host's file content.
///
/// `embedded_dns`: the task is on at least one non-ingress swarm network, so
/// names resolve through the embedded server at 127.0.0.11.
pub fn for_task(host: &str, embedded_dns: bool) -> String {
    let filtered = filter(&filter(host, true), false);
    if !embedded_dns {
        return filtered;
    }
    let mut options = options(&filtered);
    let ndots_set = match host_ndots(&options) {
        Ok(set) => set,
        // dockerd gives up rebuilding on a malformed ndots and leaves the
        // filtered copy in place.
        Err(()) => return filtered,
    };
    let mut servers = vec![EMBEDDED_DNS.to_string()];
    servers.extend(nameservers(&filtered, Family::V6));
    if !ndots_set {
        // Service names are single labels: try them as they are first.
        options.push("ndots:0".to_string());
    }
    build(&servers, &search_domains(&filtered), &options)
}

/// Which file holds the host's resolvers: `/etc/resolv.conf`, unless it
/// only names systemd-resolved's stub 127.0.0.53, which no container can
/// reach, in which case the file behind the stub.
pub fn host_path(etc_resolv_conf: &str) -> PathBuf {
    let ns = nameservers(etc_resolv_conf, Family::Any);
    if ns.len() == 1 && ns[0] == "127.0.0.53" {
        PathBuf::from(SYSTEMD_RESOLV_CONF)
    } else {
        PathBuf::from(HOST_RESOLV_CONF)
    }
}

/// Reads the host's resolver configuration as dockerd does: an absent file
/// reads as empty (the defaults then apply).
pub fn read_host(etc: &Path) -> std::io::Result<String> {
    let read = |p: &Path| match std::fs::read_to_string(p) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    };
    let content = read(etc)?;
    if etc == Path::new(HOST_RESOLV_CONF) {
        let chosen = host_path(&content);
        if chosen != etc {
            return read(&chosen);
        }
    }
    Ok(content)
}

/// The IPv4 nameservers of a resolv.conf (a node-local subnet must not
/// hide them).
pub fn ipv4_nameservers(content: &str) -> Vec<Ipv4Addr> {
    nameservers(content, Family::Any)
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Drops localhost nameservers (and IPv6 ones unless `ipv6`), then adds the
/// public defaults when no nameserver is left.
fn filter(content: &str, ipv6: bool) -> String {
    let mut cleaned = LOCALHOST_NS.replace_all(content, "").into_owned();
    if !ipv6 {
        cleaned = IPV6_NS.replace_all(&cleaned, "").into_owned();
    }
    if nameservers(&cleaned, Family::Any).is_empty() {
        let mut dns: Vec<&str> = DEFAULT_IPV4_DNS.to_vec();
        if ipv6 {
            dns.extend(DEFAULT_IPV6_DNS);
        }
        cleaned.push('\n');
        cleaned.push_str(&dns.join("\n"));
    }
    cleaned
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V6,
}

/// Lines without their `#` comments.
fn lines(content: &str) -> impl Iterator<Item = &str> {
    content
        .split('\n')
        .map(|l| l.find('#').map_or(l, |i| &l[..i]))
}

fn nameservers(content: &str, family: Family) -> Vec<String> {
    let re = match family {
        Family::Any => &*NS_ANY,
        Family::V6 => &*NS_V6,
    };
    lines(content)
        .filter_map(|l| re.captures(l).and_then(|c| c.get(1)))
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The fields of the last line `re` matches.
fn last_fields(content: &str, re: &Regex) -> Vec<String> {
    lines(content)
        .filter_map(|l| re.captures(l).and_then(|c| c.get(1)))
        .last()
        .map(|m| m.as_str().split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn search_domains(content: &str) -> Vec<String> {
    last_fields(content, &SEARCH)
}

fn options(content: &str) -> Vec<String> {
    last_fields(content, &OPTIONS)
}

/// Whether the host sets a valid ndots (the first ndots option decides);
/// `Err` for a malformed one.
fn host_ndots(options: &[String]) -> Result<bool, ()> {
    let Some(opt) = options.iter().find(|o| o.contains("ndots")) else {
        return Ok(false);
    };
    match opt.split(':').collect::<Vec<_>>()[..] {
        [_, n] => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(true),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

fn build(servers: &[String], search: &[String], options: &[String]) -> String {
    let mut out = String::new();
    let search = search.join(" ");
    if !search.is_empty() && search.trim_matches(' ') != "." {
        out.push_str(&format!("search {search}\n"));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    let options = options.join(" ");
    if !options.trim_matches(' ').is_empty() {
        out.push_str(&format!("options {options}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_form_keeps_search_and_options() {
        let host =
            "# generated\nsearch example.com corp\nnameserver 10.1.2.3\noptions edns0 rotate\n";
        assert_eq!(
            for_task(host, true),
            "search example.com corp\nnameserver 127.0.0.11\noptions edns0 rotate ndots:0\n"
        );
    }

    #[test]
    fn embedded_form_without_search_or_options() {
        assert_eq!(
            for_task("nameserver 10.255.255.53\n", true),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
    }

    #[test]
    fn embedded_form_respects_host_ndots() {
        let host = "nameserver 1.1.1.1\noptions ndots:2 timeout:1\n";
        assert_eq!(
            for_task(host, true),
            "nameserver 127.0.0.11\noptions ndots:2 timeout:1\n"
        );
    }

    #[test]
    fn malformed_ndots_leaves_filtered_copy() {
        let host = "nameserver 1.1.1.1\noptions ndots:x\n";
        assert_eq!(for_task(host, true), host);
    }

    #[test]
    fn plain_copy_drops_localhost_and_ipv6() {
        let host = "search lan\nnameserver 127.0.0.1\nnameserver 192.168.1.1\nnameserver fe80::1\noptions rotate\n";
        assert_eq!(
            for_task(host, false),
            "search lan\nnameserver 192.168.1.1\noptions rotate\n"
        );
    }

    #[test]
    fn only_localhost_gets_public_defaults() {
        // The first pass appends IPv4 and IPv6 defaults; the second drops
        // the IPv6 ones, leaving the newline that followed 8.8.4.4.
        assert_eq!(
            for_task("nameserver 127.0.0.53\n", false),
            "\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            for_task("nameserver 127.0.0.53\n", true),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
    }

    #[test]
    fn empty_host_file_gets_defaults() {
        assert_eq!(
            for_task("", false),
            "\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn last_search_line_wins_and_comments_are_ignored() {
        let host = "search a\nsearch b c # trailing\nnameserver 9.9.9.9\n";
        assert_eq!(
            for_task(host, true),
            "search b c\nnameserver 127.0.0.11\noptions ndots:0\n"
        );
    }

    #[test]
    fn search_dot_is_dropped() {
        assert_eq!(
            for_task("search .\nnameserver 9.9.9.9\n", true),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
    }

    #[test]
    fn systemd_stub_points_at_upstream_file() {
        assert_eq!(
            host_path("nameserver 127.0.0.53\noptions edns0\n"),
            PathBuf::from(SYSTEMD_RESOLV_CONF)
        );
        assert_eq!(
            host_path("nameserver 127.0.0.53\nnameserver 1.1.1.1\n"),
            PathBuf::from(HOST_RESOLV_CONF)
        );
    }
}
