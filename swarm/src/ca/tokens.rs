//! Join tokens: `SWMTKN-1-<root CA digest>-<secret>`, as swarmkit forms them.

/// The version prefix of join tokens.
pub const PREFIX: &str = "SWMTKN-1-";

fn base36(bytes: &[u8], width: usize) -> String {
    // Big-endian base conversion of an arbitrary byte string.
    let mut digits: Vec<u8> = Vec::new();
    let mut num: Vec<u8> = bytes.to_vec();
    while num.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let acc = (rem << 8) | *b as u32;
            *b = (acc / 36) as u8;
            rem = acc % 36;
        }
        digits.push(rem as u8);
    }
    while digits.len() < width {
        digits.push(0);
    }
    digits
        .iter()
        .rev()
        .map(|&d| {
            if d < 10 {
                (b'0' + d) as char
            } else {
                (b'a' + d - 10) as char
            }
        })
        .collect()
}

/// Makes a join token for the CA certificate `ca_der` with a fresh secret.
pub fn generate(ca_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ca_der);
    let secret: [u8; 16] = rand::random();
    format!(
        "{PREFIX}{}-{}",
        base36(digest.as_ref(), 50),
        base36(&secret, 25)
    )
}

/// Whether `token` has the form of a join token for the CA `ca_der`.
pub fn matches_ca(token: &str, ca_der: &[u8]) -> bool {
    let digest = ring::digest::digest(&ring::digest::SHA256, ca_der);
    let want = base36(digest.as_ref(), 50);
    token
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(d, s)| d == want && s.len() == 25)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let ca = b"certificate";
        let t = generate(ca);
        assert!(t.starts_with("SWMTKN-1-"));
        let parts: Vec<&str> = t.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[2].len(), 50);
        assert_eq!(parts[3].len(), 25);
        assert!(matches_ca(&t, ca));
        assert!(!matches_ca(&t, b"other"));
        assert_ne!(generate(ca), t);
    }
}

// STUB additions (replaced by the PKI branch).
/// Parsed.
pub struct ParsedToken {
    /// Digest.
    pub digest: String,
    /// Secret.
    pub secret: String,
}
/// Parse.
pub fn parse(_t: &str) -> crate::Result<ParsedToken> {
    Err(crate::Error::internal("stub"))
}
/// Digest.
pub fn root_digest(_d: &[u8]) -> String {
    String::new()
}
/// Hex.
pub fn digest_hex(_p: &ParsedToken) -> String {
    String::new()
}
/// Role.
pub fn role_for(_t: &str, _j: &crate::model::api::JoinTokens) -> Option<super::identity::Role> {
    None
}
