//! `docker login` (`POST /auth`): checks credentials against a registry the
//! way dockerd does, without keeping them.

use super::auth::Challenge;
use super::auth::RegistryAuth;
use super::error::parse_error_response;
use super::error::RegistryError;
use super::error::RegistryErrorKind;
use super::session::http_client;
use super::session::ping;
use super::session::transport_error;
use super::session::Endpoint;
use crate::error::Result;

/// Checks `auth` against the registry its `server_address` names (Docker
/// Hub when empty). Returns the identity token the registry issued, if it
/// issued one. Errors are dockerd's: a refused login is
/// `login attempt to URL failed with status: 401 Unauthorized` (a plain
/// failure) for basic-auth registries, and `Unauthorized` for token ones.
pub async fn registry_login(auth: &RegistryAuth) -> Result<Option<String>> {
    let host = hostname(&auth.server_address);
    let endpoint = Endpoint::for_domain(&host);
    let http = http_client()?;
    let url = format!("{}/v2/", endpoint.base());
    let challenge = ping(&http, &endpoint).await?;
    let mut req = http.get(&url);
    let mut identity = None;
    match challenge {
        None => {}
        Some(Challenge::Basic) => {
            let Some((u, p)) = auth.basic() else {
                return Err(failed(format!("Get \"{url}\": no basic auth credentials")).into());
            };
            req = req.basic_auth(u, Some(p));
        }
        Some(Challenge::Bearer { realm, service }) => {
            let (token, refresh) = fetch_token(&http, auth, &realm, &service, &url).await?;
            identity = refresh;
            req = req.bearer_auth(token);
        }
    }
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error("Get", &url, &endpoint.host, &e))?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        return Err(failed(format!(
            "login attempt to {url} failed with status: {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ))
        .into());
    }
    Ok(identity)
}

/// A token for `/v2/` from the token server, with the refresh token it may
/// add (dockerd asks for one: `offline_token=true`).
async fn fetch_token(
    http: &reqwest::Client,
    auth: &RegistryAuth,
    realm: &str,
    service: &str,
    v2_url: &str,
) -> Result<(String, Option<String>)> {
    let mut req = http.get(realm).query(&[
        ("service", service),
        ("client_id", "docker"),
        ("offline_token", "true"),
    ]);
    if let Some((u, p)) = auth.basic() {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error("Get", realm, realm, &e))?;
    let status = resp.status().as_u16();
    let header = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let body = resp.bytes().await.unwrap_or_default();
    if status != 200 {
        let text = parse_error_response(status, header.as_deref(), &body)
            .map(|c| c.text())
            .unwrap_or_else(|| format!("received unexpected HTTP status: {status}"));
        let kind = if status == 401 {
            RegistryErrorKind::Unauthorized
        } else {
            RegistryErrorKind::Failed
        };
        return Err(RegistryError::new(kind, format!("Get \"{v2_url}\": {text}")).into());
    }
    #[derive(serde::Deserialize)]
    struct Token {
        #[serde(default)]
        token: String,
        #[serde(default)]
        access_token: String,
        #[serde(default)]
        refresh_token: String,
    }
    let t: Token = serde_json::from_slice(&body)
        .map_err(|e| failed(format!("unable to decode token response: {e}")))?;
    let token = if t.token.is_empty() {
        t.access_token
    } else {
        t.token
    };
    if token.is_empty() {
        return Err(
            failed("authorization server did not include a token in the response".into()).into(),
        );
    }
    Ok((
        token,
        (!t.refresh_token.is_empty()).then_some(t.refresh_token),
    ))
}

fn failed(message: String) -> RegistryError {
    RegistryError::new(RegistryErrorKind::Failed, message)
}

/// The registry host of a login's server address (`https://h:5000/v1/`,
/// `h:5000`), Docker Hub's index when empty.
fn hostname(server_address: &str) -> String {
    let s = server_address.trim();
    if s.is_empty() {
        return "docker.io".into();
    }
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(hostname(""), "docker.io");
        assert_eq!(hostname("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(hostname("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(hostname("http://localhost:5000/"), "localhost:5000");
    }
}
