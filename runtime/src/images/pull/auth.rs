//! Registry credentials as clients send them (`X-Registry-Auth`, the body of
//! `POST /auth`), and the `WWW-Authenticate` challenges registries answer.

use std::collections::HashMap;

use base64::Engine;
use oci_client::secrets::RegistryAuth as OciAuth;

use super::error::RegistryError;
use super::error::RegistryErrorKind;

/// Credentials for one registry: the decoded `X-Registry-Auth` header (or
/// `POST /auth` body) that the docker CLI builds from its config file.
///
/// Decode a header with [`RegistryAuth::from_header`]; `None` there means
/// an anonymous pull.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name for basic authentication.
    pub username: String,
    /// Password (or a personal access token) for basic authentication.
    pub password: String,
    /// The registry these credentials are for, as the client wrote it.
    pub server_address: String,
    /// An OAuth refresh token from an earlier login (not used for pulls yet:
    /// a client that holds only this pulls anonymously).
    pub identity_token: String,
    /// A bearer token to send as it is.
    pub registry_token: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// Decodes an `X-Registry-Auth` header as dockerd does for a pull, and
    /// as leniently: base64url (padded or not) or standard base64 of the
    /// JSON object `{username, password, auth, serveraddress, identitytoken,
    /// registrytoken}` (keys in any case). An empty header, `{}`, a header
    /// that does not decode, and one without any credential all mean
    /// anonymous: `None`.
    pub fn from_header(value: &str) -> Option<RegistryAuth> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let engines = [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let bytes = engines.iter().find_map(|e| e.decode(value).ok())?;
        let auth = RegistryAuth::from_json(&bytes).ok()?;
        (!auth.is_anonymous()).then_some(auth)
    }

    /// Decodes the JSON body of `POST /auth` (the same object as the header,
    /// not base64-encoded). The error is dockerd's 400 text.
    pub fn from_json(bytes: &[u8]) -> Result<RegistryAuth, RegistryError> {
        let invalid = |why: String| {
            RegistryError::new(
                RegistryErrorKind::InvalidArgument,
                format!("invalid X-Registry-Auth header: invalid JSON: {why}"),
            )
        };
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            invalid(if e.is_eof() {
                "unexpected EOF".into()
            } else {
                e.to_string()
            })
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("not a JSON object".into()))?;
        // Go's JSON decoder matches keys without regard to case.
        let field = |key: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let mut auth = RegistryAuth {
            username: field("username"),
            password: field("password"),
            server_address: field("serveraddress"),
            identity_token: field("identitytoken"),
            registry_token: field("registrytoken"),
        };
        // Older clients send only `auth`: base64 of `user:password`.
        let packed = field("auth");
        if auth.username.is_empty() && !packed.is_empty() {
            if let Some((user, pass)) = base64::engine::general_purpose::STANDARD
                .decode(packed.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                auth.username = user;
                auth.password = pass;
            }
        }
        Ok(auth)
    }

    /// True when there is nothing to authenticate with.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }

    /// User and password for basic authentication, if both are given.
    pub(crate) fn basic(&self) -> Option<(&str, &str)> {
        (!self.username.is_empty() && !self.password.is_empty())
            .then_some((self.username.as_str(), self.password.as_str()))
    }

    /// The credentials in oci-client's form.
    pub(crate) fn to_oci(auth: Option<&RegistryAuth>) -> OciAuth {
        let Some(a) = auth else {
            return OciAuth::Anonymous;
        };
        if !a.registry_token.is_empty() {
            return OciAuth::Bearer(a.registry_token.clone());
        }
        match a.basic() {
            Some((u, p)) => OciAuth::Basic(u.to_string(), p.to_string()),
            None => OciAuth::Anonymous,
        }
    }
}

/// How a registry asks to be authenticated (from its `/v2/` answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP basic authentication with the user's credentials.
    Basic,
    /// Token authentication: a token from `realm` for `service`.
    Bearer {
        /// The token server.
        realm: String,
        /// The service name to ask the token server for.
        service: String,
    },
}

impl Challenge {
    /// The first challenge of a `WWW-Authenticate` header that shoal can
    /// answer.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let p = challenge_params(params);
            return Some(Challenge::Bearer {
                realm: p.get("realm").cloned().unwrap_or_default(),
                service: p.get("service").cloned().unwrap_or_default(),
            });
        }
        None
    }
}

/// `realm="x",service="y"` as a map (keys lower case, quotes removed).
pub(crate) fn challenge_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64url(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(s)
    }

    #[test]
    fn header_forms() {
        let json = r#"{"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"}"#;
        let want = RegistryAuth {
            username: "u".into(),
            password: "p?>".into(),
            server_address: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        assert_eq!(RegistryAuth::from_header(&b64url(json)), Some(want.clone()));
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(RegistryAuth::from_header(&std), Some(want.clone()));
        let nopad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        assert_eq!(RegistryAuth::from_header(&nopad), Some(want));
    }

    #[test]
    fn anonymous_forms() {
        assert_eq!(RegistryAuth::from_header(""), None);
        assert_eq!(RegistryAuth::from_header(&b64url("{}")), None);
        assert_eq!(RegistryAuth::from_header("e30="), None);
        assert_eq!(RegistryAuth::from_header("%%%"), None);
        assert_eq!(RegistryAuth::from_header(&b64url("[1]")), None);
        let empty = r#"{"username":"","password":"","serveraddress":"x"}"#;
        assert_eq!(RegistryAuth::from_header(&b64url(empty)), None);
    }

    #[test]
    fn packed_auth_and_key_case() {
        let packed = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et");
        let json = format!(r#"{{"Auth":"{packed}","ServerAddress":"r.example"}}"#);
        let a = RegistryAuth::from_json(json.as_bytes()).unwrap();
        assert_eq!(a.basic(), Some(("alice", "s3cr:et")));
        assert_eq!(a.server_address, "r.example");
    }

    #[test]
    fn bad_login_body() {
        let e = RegistryAuth::from_json(b"{").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid X-Registry-Auth header: invalid JSON: unexpected EOF"
        );
    }

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: "registry.docker.io".into()
            })
        );
        let p = challenge_params(r#"realm="a\"b", error=invalid_token"#);
        assert_eq!(p["realm"], "a\"b");
        assert_eq!(p["error"], "invalid_token");
    }
}
