//! Random identifiers for containers and anonymous volumes.

/// `n` random bytes as lower-case hex (`2n` digits).
pub fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    // The system RNG does not fail on Linux; an all-zero ID would still be valid.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
