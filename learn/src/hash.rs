//! A stable 64-bit hash (FNV-1a followed by the SplitMix64 finaliser for good low bits), and that
//! finaliser for seeding random streams. Stable across processes, platforms and releases: sticky
//! assignments, embedding-cache keys and the trainer's data splits must not move on upgrade.

/// SplitMix64's increment: a stream's state advances by it each draw.
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: nearby inputs give unrelated outputs. A stream seeded with
/// `mix(seed)` and advanced by [`GAMMA`] does not overlap the stream of a nearby seed (seeded
/// with the seed itself, seed s + 1's stream would be seed s's shifted by one draw when the
/// seed is multiplied by γ).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}
