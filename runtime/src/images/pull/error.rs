//! Registry failures, sorted by behaviour, each carrying the text dockerd
//! shows for it (the CLI prints it after "Error response from daemon: ").

use crate::error::ErrorKind;

/// What kind of registry failure this is; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryErrorKind {
    /// The reference or the credentials do not parse (400).
    InvalidArgument,
    /// The content is of a kind dockerd does not pull (400).
    Unsupported,
    /// The repository, tag or manifest is not there, or (for a pull) access
    /// to it was denied, which dockerd reports the same way (404).
    NotFound,
    /// The registry refused the credentials (401).
    Unauthorized,
    /// The registry denied access (403; lookups only, pulls say NotFound).
    Forbidden,
    /// The registry could not be reached, or answered something else (500).
    Failed,
}

/// A failed registry conversation: its kind and dockerd's text for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    kind: RegistryErrorKind,
    message: String,
}

impl RegistryError {
    /// An error of `kind` with `message` as the user sees it.
    pub(crate) fn new(kind: RegistryErrorKind, message: impl Into<String>) -> RegistryError {
        RegistryError {
            kind,
            message: message.into(),
        }
    }

    /// The behaviour class.
    pub fn kind(&self) -> RegistryErrorKind {
        self.kind
    }

    /// The runtime-wide class of this error.
    pub(crate) fn error_kind(&self) -> ErrorKind {
        match self.kind {
            RegistryErrorKind::InvalidArgument | RegistryErrorKind::Unsupported => {
                ErrorKind::InvalidArgument
            }
            RegistryErrorKind::NotFound => ErrorKind::NotFound,
            RegistryErrorKind::Unauthorized
            | RegistryErrorKind::Forbidden
            | RegistryErrorKind::Failed => ErrorKind::Internal,
        }
    }

    /// dockerd's error for a reference that does not parse.
    pub(crate) fn invalid_reference(input: &str) -> RegistryError {
        let message = match upper_case_remote(input) {
            Some(remote) => {
                format!("invalid reference format: repository name ({remote}) must be lowercase")
            }
            None => "invalid reference format".to_string(),
        };
        RegistryError::new(RegistryErrorKind::InvalidArgument, message)
    }
}

/// The repository path of `input` when upper case is what makes it invalid
/// (dockerd names it, with `library/` added for Docker Hub short names).
fn upper_case_remote(input: &str) -> Option<String> {
    let name = input.split('@').next().unwrap_or(input);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    let (domain, remote) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest.to_string())
        }
        _ => (None, name.to_string()),
    };
    if remote.to_ascii_lowercase() == remote {
        return None;
    }
    let hub = domain.is_none_or(|d| d == "docker.io" || d == "index.docker.io");
    Some(if hub && !remote.contains('/') {
        format!("library/{remote}")
    } else {
        remote
    })
}

/// One entry of a registry's `{"errors": [...]}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrCode {
    /// The code as sent, e.g. `MANIFEST_UNKNOWN`.
    pub code: String,
    /// The registry's message.
    pub message: String,
}

/// Codes docker's registry client knows; any other reads as `UNKNOWN`.
const KNOWN_CODES: &[&str] = &[
    "UNKNOWN",
    "UNSUPPORTED",
    "UNAUTHORIZED",
    "DENIED",
    "UNAVAILABLE",
    "TOOMANYREQUESTS",
    "DIGEST_INVALID",
    "SIZE_INVALID",
    "NAME_INVALID",
    "TAG_INVALID",
    "NAME_UNKNOWN",
    "MANIFEST_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNVERIFIED",
    "MANIFEST_BLOB_UNKNOWN",
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "PAGINATION_NUMBER_INVALID",
    "RANGE_INVALID",
];

impl ErrCode {
    /// The code as docker's client knows it (unknown codes become `UNKNOWN`).
    fn known(&self) -> &str {
        if KNOWN_CODES.contains(&self.code.as_str()) {
            &self.code
        } else {
            "UNKNOWN"
        }
    }

    /// `manifest unknown: <message>`: the code in lower case words, then
    /// the registry's message, as docker's client renders one error.
    pub fn text(&self) -> String {
        format!(
            "{}: {}",
            self.known().to_ascii_lowercase().replace('_', " "),
            self.message
        )
    }

    /// The HTTP status the registry API assigns to this code.
    fn status_kind(&self) -> RegistryErrorKind {
        match self.known() {
            "UNAUTHORIZED" => RegistryErrorKind::Unauthorized,
            "DENIED" => RegistryErrorKind::Forbidden,
            "NAME_UNKNOWN" | "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "BLOB_UPLOAD_UNKNOWN" => {
                RegistryErrorKind::NotFound
            }
            "NAME_INVALID"
            | "TAG_INVALID"
            | "DIGEST_INVALID"
            | "SIZE_INVALID"
            | "MANIFEST_INVALID"
            | "MANIFEST_UNVERIFIED"
            | "MANIFEST_BLOB_UNKNOWN" => RegistryErrorKind::InvalidArgument,
            _ => RegistryErrorKind::Failed,
        }
    }

    /// The error of a pull that failed with this code (dockerd's
    /// `translatePullError`): `familiar` is the reference as given,
    /// `familiar_name` the same without tag or digest.
    pub fn for_pull(&self, familiar: &str, familiar_name: &str) -> RegistryError {
        let text = self.text();
        match self.known() {
            "DENIED" => RegistryError::new(
                RegistryErrorKind::NotFound,
                format!(
                    "pull access denied for {familiar_name}, repository does not exist or may require 'docker login': {text}"
                ),
            ),
            "MANIFEST_UNKNOWN" => RegistryError::new(
                RegistryErrorKind::NotFound,
                format!("manifest for {familiar} not found: {text}"),
            ),
            "NAME_UNKNOWN" => RegistryError::new(
                RegistryErrorKind::NotFound,
                format!("repository {familiar_name} not found: {text}"),
            ),
            "UNAUTHORIZED" => RegistryError::new(RegistryErrorKind::Unauthorized, text),
            _ => RegistryError::new(RegistryErrorKind::Failed, text),
        }
    }

    /// The error of a manifest lookup (`/distribution`), which dockerd
    /// passes through with the registry API's status for the code.
    pub fn for_lookup(&self) -> RegistryError {
        let kind = match self.status_kind() {
            // A malformed name here is the registry's complaint, not ours.
            RegistryErrorKind::InvalidArgument => RegistryErrorKind::Failed,
            k => k,
        };
        RegistryError::new(kind, self.text())
    }
}

/// The first error of a registry error body, as docker's client reads it
/// (the `WWW-Authenticate` error parameter first, then the JSON body; a 401
/// without either is `UNAUTHORIZED`).
pub(crate) fn parse_error_response(
    status: u16,
    www_authenticate: Option<&str>,
    body: &[u8],
) -> Option<ErrCode> {
    if let Some(h) = www_authenticate {
        if let Some(c) = bearer_error(h) {
            return Some(c);
        }
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    if let Ok(b) = serde_json::from_slice::<Body>(body) {
        if let Some(e) = b.errors.into_iter().next() {
            return Some(ErrCode {
                code: e.code,
                message: e.message,
            });
        }
    }
    match status {
        401 => Some(ErrCode {
            code: "UNAUTHORIZED".into(),
            message: String::from_utf8_lossy(body).trim().to_string(),
        }),
        403 => Some(ErrCode {
            code: "DENIED".into(),
            message: String::from_utf8_lossy(body).trim().to_string(),
        }),
        _ => None,
    }
}

/// `Bearer ... error="insufficient_scope"` as an error code (RFC 6750).
fn bearer_error(header: &str) -> Option<ErrCode> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = super::auth::challenge_params(params);
    let (code, default) = match params.get("error").map(String::as_str) {
        Some("invalid_token") => ("UNAUTHORIZED", "authentication required"),
        Some("insufficient_scope") => ("DENIED", "requested access to the resource is denied"),
        _ => return None,
    };
    let message = params
        .get("error_description")
        .filter(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| default.to_string());
    Some(ErrCode {
        code: code.into(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str, m: &str) -> ErrCode {
        ErrCode {
            code: c.into(),
            message: m.into(),
        }
    }

    #[test]
    fn pull_texts_match_dockerd() {
        let e = code("MANIFEST_UNKNOWN", "manifest unknown")
            .for_pull("localhost:5000/nope:latest", "localhost:5000/nope");
        assert_eq!(
            e.to_string(),
            "manifest for localhost:5000/nope:latest not found: manifest unknown: manifest unknown"
        );
        assert_eq!(e.kind(), RegistryErrorKind::NotFound);
        let e =
            code("DENIED", "requested access to the resource is denied").for_pull("x:latest", "x");
        assert_eq!(
            e.to_string(),
            "pull access denied for x, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
        );
        let e = code("UNAUTHORIZED", "authentication required").for_pull("x:1", "x");
        assert_eq!(e.to_string(), "unauthorized: authentication required");
        assert_eq!(e.kind(), RegistryErrorKind::Unauthorized);
        let e = code("WEIRD", "boom").for_pull("x:1", "x");
        assert_eq!(e.to_string(), "unknown: boom");
    }

    #[test]
    fn lookup_keeps_the_api_status() {
        let e = code("DENIED", "no").for_lookup();
        assert_eq!(e.kind(), RegistryErrorKind::Forbidden);
        assert_eq!(e.to_string(), "denied: no");
    }

    #[test]
    fn error_bodies() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            parse_error_response(404, None, body),
            Some(code("MANIFEST_UNKNOWN", "manifest unknown"))
        );
        let hdr = r#"Bearer realm="https://auth",error="insufficient_scope""#;
        assert_eq!(
            parse_error_response(401, Some(hdr), b""),
            Some(code("DENIED", "requested access to the resource is denied"))
        );
        assert_eq!(
            parse_error_response(401, None, b"nope\n"),
            Some(code("UNAUTHORIZED", "nope"))
        );
        assert_eq!(parse_error_response(500, None, b"x"), None);
    }

    #[test]
    fn invalid_reference_texts() {
        assert_eq!(
            RegistryError::invalid_reference("Busybox").to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            RegistryError::invalid_reference("a//b").to_string(),
            "invalid reference format"
        );
    }
}
