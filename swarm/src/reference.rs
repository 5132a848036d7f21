//! Docker image references: one parser for the whole daemon. It validates
//! what a service spec names (docker's reference grammar) and normalizes what
//! a user types (`busybox`, `shoal-test/busybox:latest`) into the full names
//! containerd stores (`docker.io/library/busybox:latest`) and back.
//!
//! Hand-written: small, and no maintained crate applies docker's
//! `docker.io/library/` normalization exactly as dockerd shows names.

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, `docker.io` when none is given.
    pub domain: String,
    /// Repository path; `library/` is added for one-component Docker Hub names.
    pub path: String,
    /// Tag; `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// `sha256:...` digest, if given.
    pub digest: Option<String>,
}

const DOCKER_HUB: &str = "docker.io";

impl Reference {
    /// Parses and normalizes `s`. Returns `None` when it is not a valid
    /// reference (for example upper-case repository names).
    pub fn parse(s: &str) -> Option<Reference> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            // algorithm:hex, at least 32 hex digits (docker's grammar).
            let (alg, hex) = d.split_once(':')?;
            let alg_ok = alg.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'));
            if !alg_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
        }
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
            if !ok {
                return None;
            }
        }
        let (mut domain, mut path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let host_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !host_ok {
            return None;
        }
        if domain == "index.docker.io" {
            domain = DOCKER_HUB.to_string();
        }
        if domain == DOCKER_HUB && !path.contains('/') {
            path = format!("library/{path}");
        }
        let path_ok = !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || b == b'.'
                            || b == b'_'
                            || b == b'-'
                    })
                    && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                    && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
            });
        if !path_ok {
            return None;
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Some(Reference {
            domain,
            path,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// The full name containerd stores, e.g. `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        let mut s = format!("{}/{}", self.domain, self.path);
        self.push_suffix(&mut s);
        s
    }

    /// The short name dockerd shows, e.g. `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        };
        self.push_suffix(&mut s);
        s
    }

    /// The short repository name, without tag or digest (`busybox`).
    pub fn familiar_name(&self) -> String {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
        .familiar()
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
    }
}

/// The familiar form of a stored full name, or `None` if it is not a
/// reference (such as a name a foreign client stored).
pub fn familiar(full: &str) -> Option<String> {
    Reference::parse(full).map(|r| r.familiar())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_dockerd() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "shoal-test/busybox:latest",
                "docker.io/shoal-test/busybox:latest",
                "shoal-test/busybox:latest",
            ),
            (
                "docker.io/shoal-test/busybox",
                "docker.io/shoal-test/busybox:latest",
                "shoal-test/busybox:latest",
            ),
            (
                "localhost:5000/a/b:v1",
                "localhost:5000/a/b:v1",
                "localhost:5000/a/b:v1",
            ),
        ];
        for (input, full, fam) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.full(), full, "{input}");
            assert_eq!(r.familiar(), fam, "{input}");
        }
    }

    #[test]
    fn digests_follow_the_grammar() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = Reference::parse(&format!("nginx@sha256:{hex}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.full(), format!("docker.io/library/nginx@sha256:{hex}"));
        assert!(Reference::parse(&format!("nginx:1@sha256:{hex}")).is_some());
        assert!(Reference::parse("nginx@sha256:abc").is_none());
        assert!(Reference::parse(&format!("nginx@:{hex}")).is_none());
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "Busybox",
            "Busy:Box",
            "UPPER",
            "a//b",
            "a-/b",
            "a:",
            "a@sha256:12",
            "",
        ] {
            assert!(Reference::parse(bad).is_none(), "{bad}");
        }
    }
}
