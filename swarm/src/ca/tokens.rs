//! Join tokens: `SWMTKN-1-<root CA digest>-<secret>`, as swarmkit forms them.
//!
//! The digest (SHA-256 of the root CA certificate, 50 base36 digits) lets a
//! joining node check the root it fetched over an unauthenticated connection;
//! the secret (128 random bits, 25 base36 digits) is what a manager checks
//! before it issues a certificate, and it alone decides the role.

use subtle::ConstantTimeEq;

use super::identity::Role;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api::JoinTokens;

/// The version prefix of join tokens.
pub const PREFIX: &str = "SWMTKN-1-";

/// swarmkit's text for a token that is not of the `SWMTKN-1-...` form
/// (`ca.ParseJoinToken`); dockerd returns it as is, with status 500.
pub const INVALID_JOIN_TOKEN: &str = "invalid join token";

/// The text dockerd returns (500) for a token whose digest is too large for
/// SHA-256 (from the digest library swarmkit parses it with).
pub const INVALID_DIGEST_LENGTH: &str = "invalid checksum digest length";

/// The text a non-FIPS dockerd returns (500) for a `SWMTKN-2-1-` token.
pub const MANDATORY_FIPS: &str = "node is not FIPS-enabled but cluster requires FIPS";

/// The description of the CA server's InvalidArgument error for a token that
/// is no current token of the cluster (swarmkit `IssueNodeCertificate`);
/// dockerd relays it as "rpc error: code = InvalidArgument desc = ...".
pub const NOT_A_VALID_TOKEN: &str = "A valid join token is necessary to join this cluster";

/// Length of the base36 root CA digest in a token.
const DIGEST_LEN: usize = 50;
/// Length of the base36 secret in a token.
const SECRET_LEN: usize = 25;

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

/// Makes a join token for the root CA bundle `ca_der` (the PEM bytes the
/// CA serves) with a fresh secret.
pub fn generate(ca_der: &[u8]) -> String {
    let secret: [u8; 16] = rand::random();
    format!(
        "{PREFIX}{}-{}",
        root_digest(ca_der),
        base36(&secret, SECRET_LEN)
    )
}

/// The token's digest of the root CA: SHA-256 of exactly the bytes given,
/// as 50 base36 digits (zero-padded on the left).
///
/// Callers must hash the same bytes on both sides: the manager when it makes
/// tokens and the joiner when it checks the root it downloaded. swarmkit
/// hashes the root PEM bundle exactly as its `GetRootCACertificate` serves
/// it (during a rotation that covers every root in the bundle, so a man in
/// the middle cannot slip in an extra one), and so does shoal.
pub fn root_digest(ca_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ca_der);
    base36(digest.as_ref(), DIGEST_LEN)
}

/// The same digest as [`root_digest`] in 64 lowercase hex digits: what a
/// joiner compares with [`digest_hex`] of its token before it trusts a root
/// it downloaded.
pub fn root_digest_hex(ca_der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, ca_der).as_ref())
}

/// Whether `token` is a well-formed join token for the CA `ca_der` (the
/// joiner's fingerprint check: digests compared as numbers).
pub fn matches_ca(token: &str, ca_der: &[u8]) -> bool {
    parse(token).is_ok_and(|t| digest_hex(&t) == root_digest_hex(ca_der))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The two parts of a join token that [`parse`] accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedToken {
    /// The root CA digest: 50 characters, base36 digits in any token shoal
    /// made. Compare digests with [`digest_hex`], not as strings: swarmkit
    /// reads them as numbers (so `A` is `a`).
    pub digest: String,
    /// The secret: 25 characters.
    pub secret: String,
}

impl std::fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is a credential: keep it out of logs.
        f.debug_struct("ParsedToken")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// Splits a join token into its root digest and secret, refusing exactly
/// what a non-FIPS dockerd refuses before it contacts any manager, with its
/// texts (all HTTP 500 there, so [`ErrorKind::Unknown`] here, without an
/// "rpc error" prefix):
///
/// - [`INVALID_JOIN_TOKEN`]: not `SWMTKN-1-<digest>-<secret>` (or
///   swarmkit's `SWMTKN-2-<0|1>-<digest>-<secret>`), or a digest that is not
///   50 characters or a secret that is not 25;
/// - [`INVALID_DIGEST_LENGTH`]: a digest whose value exceeds 256 bits;
/// - [`MANDATORY_FIPS`]: a well-formed `SWMTKN-2-1-` token (a cluster that
///   requires FIPS; shoal nodes are not FIPS nodes).
///
/// Like swarmkit it checks lengths, not characters: a token with odd
/// characters parses, and then fails the root CA fingerprint check on the
/// joiner or the token comparison on the manager. Call it on the joining
/// side before the first contact, to get the digest to check the root with.
pub fn parse(token: &str) -> Result<ParsedToken> {
    let invalid = || Error::new(ErrorKind::Unknown, INVALID_JOIN_TOKEN);
    let parts: Vec<&str> = token.split('-').collect();
    if parts.len() < 4 || parts[0] != "SWMTKN" {
        return Err(invalid());
    }
    let fips = match (parts[1], parts.len()) {
        ("1", 4) => false,
        ("2", 5) if parts[2] == "0" || parts[2] == "1" => parts[2] == "1",
        _ => return Err(invalid()),
    };
    let digest = parts[parts.len() - 2];
    let secret = parts[parts.len() - 1];
    if digest.len() != DIGEST_LEN || secret.len() != SECRET_LEN {
        return Err(invalid());
    }
    if let Err(DigestError::TooLong) = digest_bytes(digest) {
        return Err(Error::new(ErrorKind::Unknown, INVALID_DIGEST_LENGTH));
    }
    if fips {
        return Err(Error::new(ErrorKind::Unknown, MANDATORY_FIPS));
    }
    Ok(ParsedToken {
        digest: digest.to_owned(),
        secret: secret.to_owned(),
    })
}

/// Which of the cluster's current tokens `token` is: `Some(Manager)` for the
/// manager token, `Some(Worker)` for the worker token, `None` for anything
/// else (malformed, rotated away, made for another root CA). The CA server
/// answers `None` with [`NOT_A_VALID_TOKEN`].
///
/// Call it on the CA server before issuing a first certificate. Like
/// swarmkit it compares whole tokens (so the secret and the digest must both
/// match), in constant time: the time taken tells a caller nothing about how
/// close a guess was, nor which role a token would have had.
pub fn role_for(token: &str, tokens: &JoinTokens) -> Option<Role> {
    let is = |current: &Option<String>| -> bool {
        current
            .as_deref()
            .is_some_and(|cur| cur.as_bytes().ct_eq(token.as_bytes()).into())
    };
    // Both are checked whatever the first gives.
    let manager = is(&tokens.manager);
    let worker = is(&tokens.worker);
    match (manager, worker) {
        (true, _) => Some(Role::Manager),
        (false, true) => Some(Role::Worker),
        (false, false) => None,
    }
}

/// The token's root digest as 64 lowercase hex digits: the SHA-256 a joiner
/// must find for the root it downloaded, and the form dockerd shows in
/// "remote CA does not match fingerprint. Expected: <hex>".
///
/// Digits are read as swarmkit reads them (base36, either case). A digest
/// with other characters gives 64 zeros, which no root matches; one over
/// 256 bits (refused by [`parse`]) also gives zeros.
pub fn digest_hex(token: &ParsedToken) -> String {
    hex(&digest_bytes(&token.digest).unwrap_or([0u8; 32]))
}

/// The error a joiner reports when the root CA it downloaded does not hash
/// to the token's digest: dockerd's "remote CA does not match fingerprint.
/// Expected: <64 hex digits>" (HTTP 500).
///
/// Call it only after comparing `digest_hex(token)` with the hex SHA-256 of
/// the downloaded root; the joiner must then stop and trust nothing it got.
pub fn fingerprint_mismatch(token: &ParsedToken) -> Error {
    Error::new(
        ErrorKind::Unknown,
        format!(
            "remote CA does not match fingerprint. Expected: {}",
            digest_hex(token)
        ),
    )
}

/// Why a digest is not a 256-bit number.
enum DigestError {
    /// A character that is no base36 digit.
    BadDigit,
    /// More than 256 bits (50 base36 digits can reach 2^258).
    TooLong,
}

/// Base36 digits (either case) to a 256-bit big-endian number.
fn digest_bytes(digits: &str) -> std::result::Result<[u8; 32], DigestError> {
    let mut out = [0u8; 32];
    let mut bad_digit = false;
    for c in digits.chars() {
        // Reading on past a bad digit still finds a value that is too long,
        // which is what swarmkit reports first.
        let mut carry = c.to_digit(36).unwrap_or_else(|| {
            bad_digit = true;
            0
        });
        for b in out.iter_mut().rev() {
            let acc = u32::from(*b) * 36 + carry;
            *b = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return Err(DigestError::TooLong);
        }
    }
    if bad_digit {
        return Err(DigestError::BadDigit);
    }
    Ok(out)
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

    fn tokens(ca: &[u8]) -> JoinTokens {
        JoinTokens {
            worker: Some(generate(ca)),
            manager: Some(generate(ca)),
        }
    }

    #[test]
    fn parse_splits_a_token() {
        let ca = b"root";
        let t = generate(ca);
        let p = parse(&t).unwrap();
        assert_eq!(p.digest, root_digest(ca));
        assert_eq!(p.secret.len(), 25);
        assert_eq!(t, format!("SWMTKN-1-{}-{}", p.digest, p.secret));
        assert!(!format!("{p:?}").contains(&p.secret));
    }

    #[test]
    fn malformed_tokens_are_refused_with_dockerds_texts() {
        let good = generate(b"root");
        let p = parse(&good).unwrap();
        let invalid = [
            String::new(),
            "garbage".to_owned(),
            "SWMTKN".to_owned(),
            "SWMTKN-1".to_owned(),
            "SWMTKN-1-abc-def".to_owned(),
            format!("SWMTKN-1-{}", p.digest),
            format!("SWMTKN-1-{}-{}-x", p.digest, p.secret),
            format!("SWMTKN-3-{}-{}", p.digest, p.secret),
            format!("SWMTKN-2-{}-{}", p.digest, p.secret),
            format!("SWMTKN-2-x-{}-{}", p.digest, p.secret),
            format!("XXMTKN-1-{}-{}", p.digest, p.secret),
            format!("SWMTKN-1-{}-{}", &p.digest[1..], p.secret),
            format!("SWMTKN-1-{}-{}0", p.digest, p.secret),
            format!(" {good}"),
        ];
        for bad in invalid {
            let err = parse(&bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unknown, "{bad}");
            assert_eq!(err.message(), "invalid join token", "{bad}");
            assert!(!matches_ca(&bad, b"root"));
        }
        let too_big = format!("SWMTKN-1-{}-{}", "z".repeat(50), p.secret);
        let err = parse(&too_big).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (ErrorKind::Unknown, "invalid checksum digest length")
        );
        let fips = format!("SWMTKN-2-1-{}-{}", p.digest, p.secret);
        let err = parse(&fips).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (
                ErrorKind::Unknown,
                "node is not FIPS-enabled but cluster requires FIPS"
            )
        );
    }

    #[test]
    fn odd_but_well_sized_tokens_parse_as_in_swarmkit() {
        let p = parse(&generate(b"root")).unwrap();
        // A non-FIPS v2 token parses to the same parts.
        let v2 = parse(&format!("SWMTKN-2-0-{}-{}", p.digest, p.secret)).unwrap();
        assert_eq!(v2, p);
        // Upper-case digits are the same number.
        let upper = parse(&format!(
            "SWMTKN-1-{}-{}",
            p.digest.to_uppercase(),
            p.secret
        ))
        .unwrap();
        assert_eq!(digest_hex(&upper), digest_hex(&p));
        let upper_token = format!("SWMTKN-1-{}-{}", upper.digest, upper.secret);
        assert!(matches_ca(&upper_token, b"root"));
        // Other characters parse, and match no root.
        let odd = parse(&format!("SWMTKN-1-{}-{}", "!".repeat(50), "?".repeat(25))).unwrap();
        assert_eq!(digest_hex(&odd), "0".repeat(64));
    }

    #[test]
    fn role_for_picks_manager_worker_or_none() {
        let ca = b"root";
        let tokens = tokens(ca);
        let manager = tokens.manager.clone().unwrap();
        let worker = tokens.worker.clone().unwrap();
        assert_eq!(role_for(&manager, &tokens), Some(Role::Manager));
        assert_eq!(role_for(&worker, &tokens), Some(Role::Worker));
        // A rotated-away token, a token of another root, the same parts in
        // another form, garbage.
        assert_eq!(role_for(&generate(ca), &tokens), None);
        let parts = parse(&worker).unwrap();
        let other_root = format!("SWMTKN-1-{}-{}", root_digest(b"other"), parts.secret);
        assert_eq!(role_for(&other_root, &tokens), None);
        let v2 = format!("SWMTKN-2-0-{}-{}", parts.digest, parts.secret);
        assert_eq!(role_for(&v2, &tokens), None);
        assert_eq!(role_for(&format!("{worker} "), &tokens), None);
        assert_eq!(role_for("SWMTKN-1-x-y", &tokens), None);
        assert_eq!(role_for("", &tokens), None);
        let none = JoinTokens {
            worker: None,
            manager: None,
        };
        assert_eq!(role_for(&worker, &none), None);
    }

    #[test]
    fn digest_hex_is_the_sha256_of_the_root() {
        let ca = b"some root certificate";
        let p = parse(&generate(ca)).unwrap();
        let want: String = ring::digest::digest(&ring::digest::SHA256, ca)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest_hex(&p), want);
        assert_eq!(root_digest_hex(ca), want);
        assert_eq!(digest_hex(&p).len(), 64);
        let err = fingerprint_mismatch(&p);
        assert_eq!(err.kind(), ErrorKind::Unknown);
        assert_eq!(
            err.message(),
            format!("remote CA does not match fingerprint. Expected: {want}")
        );
        // A digest with leading zero bytes keeps its width.
        let small = ParsedToken {
            digest: format!("{}{}", "0".repeat(48), "10"),
            secret: String::new(),
        };
        assert_eq!(digest_hex(&small), format!("{}24", "0".repeat(62)));
        let bad = ParsedToken {
            digest: "!".into(),
            secret: String::new(),
        };
        assert_eq!(digest_hex(&bad), "0".repeat(64));
    }
}
