//! Random public identifiers (`prj_…`, `conv_…`, `pk_…`, `sk_…`).
use rand::distr::{Alphanumeric, SampleString};

/// `prefix` followed by `len` random alphanumeric characters from the OS-seeded
/// thread RNG (a CSPRNG), so keys can serve as secrets.
pub(crate) fn random_id(prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.push_str(&Alphanumeric.sample_string(&mut rand::rng(), len));
    id
}
