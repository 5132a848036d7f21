//! Names for containers created without one: `adjective_surname`, the
//! form dockerd gives (its own word lists are not reused; any two words
//! of this form will do for the scripts that only read the shape).

use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "agile", "amber", "ample", "arcane", "ardent", "autumn", "bold", "brave", "breezy", "bright",
    "brisk", "calm", "candid", "clever", "cosmic", "crisp", "curious", "daring", "deft", "eager",
    "earnest", "fervent", "fluent", "frank", "gentle", "glad", "golden", "hardy", "humble",
    "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry", "mellow", "nimble", "noble",
    "patient", "placid", "polite", "proud", "quiet", "quick", "rapid", "serene", "sharp", "silent",
    "sleek", "snug", "solid", "spry", "steady", "stoic", "sunny", "swift", "tender", "tidy",
    "upbeat", "vivid", "warm", "wise", "witty", "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "ampere",
    "archimedes",
    "avogadro",
    "babbage",
    "bohr",
    "boole",
    "cantor",
    "cauchy",
    "chandrasekhar",
    "curie",
    "darwin",
    "dirac",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "fourier",
    "franklin",
    "galileo",
    "gauss",
    "germain",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hertz",
    "hilbert",
    "hopper",
    "hubble",
    "huygens",
    "jacobi",
    "joule",
    "kelvin",
    "kepler",
    "lagrange",
    "laplace",
    "leibniz",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "newton",
    "noether",
    "ohm",
    "pascal",
    "pasteur",
    "planck",
    "poincare",
    "ramanujan",
    "riemann",
    "rutherford",
    "sagan",
    "shannon",
    "somerville",
    "tesla",
    "turing",
    "volta",
    "wiles",
];

/// A random `adjective_surname`.
pub fn random() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}_{}",
        ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())],
        SURNAMES[rng.gen_range(0..SURNAMES.len())]
    )
}

/// Whether `name` is one dockerd accepts (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`,
/// after an optional `/`).
pub fn is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_are_valid() {
        for _ in 0..50 {
            let n = random();
            assert!(is_valid(&n), "{n}");
            assert_eq!(n.matches('_').count(), 1);
        }
    }

    #[test]
    fn validity_is_dockerds() {
        assert!(is_valid("web"));
        assert!(is_valid("a1.b_c-d"));
        assert!(!is_valid("a"));
        assert!(!is_valid("_web"));
        assert!(!is_valid("we b"));
        assert!(!is_valid(""));
    }
}
