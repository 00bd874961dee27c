//! A stable 64-bit hash (FNV-1a followed by the SplitMix64 finaliser for good low bits).
//! Stable across processes, platforms and releases: sticky assignments, embedding-cache keys
//! and the trainer's data splits must not move on upgrade.

pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
