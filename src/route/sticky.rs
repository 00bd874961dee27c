//! Sticky variant assignment: a stable hash of (router, route, user) picks the variant, so a
//! user keeps their variant across requests and restarts while the weights are unchanged.

use crate::config::VariantConfig;
use switchyard_learn::hash::stable_hash;

/// Picks a variant for `key` in proportion to the weights (which sum to 100), resolving to
/// 0.01 percentage points.
#[allow(
    clippy::expect_used,
    reason = "config validation refuses a router default without variants"
)]
pub fn pick<'a>(variants: &'a [VariantConfig], key: &str) -> &'a VariantConfig {
    let bucket = (stable_hash(key) % 10_000) as u32;
    let mut upper = 0;
    for v in variants {
        upper += v.weight * 100;
        if bucket < upper {
            return v;
        }
    }
    variants.last().expect("routes have at least one variant")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, VariantTarget};
    use std::sync::Arc;

    fn variants(weights: &[u32]) -> Vec<VariantConfig> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| VariantConfig {
                name: format!("v{i}"),
                target: VariantTarget::Model(Arc::new(ModelConfig {
                    id: format!("p/m{i}"),
                    provider: "p".into(),
                    upstream: format!("m{i}"),
                    input_price_per_mtok: 0.0,
                    output_price_per_mtok: 0.0,
                    context_window: 1,
                    max_output_tokens: 1,
                    tags: vec![],
                    mock: Default::default(),
                    prefill: false,
                    mock_provider: false,
                })),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn split_matches_weights_within_two_points_over_10k_users() {
        for weights in [[50, 50, 0], [70, 20, 10], [5, 90, 5]] {
            let vs = variants(&weights);
            let mut counts = [0u32; 3];
            for u in 0..10_000 {
                let v = pick(&vs, &format!("router\0route\0user-{u}"));
                counts[v.name[1..].parse::<usize>().unwrap()] += 1;
            }
            for (c, w) in counts.iter().zip(weights) {
                let share = *c as f64 / 100.0;
                assert!(
                    (share - w as f64).abs() <= 2.0,
                    "{weights:?}: got {counts:?}"
                );
            }
        }
    }

    #[test]
    fn same_user_same_variant() {
        let vs = variants(&[50, 50]);
        let first = pick(&vs, "r\0d\0alice").name.clone();
        for _ in 0..100 {
            assert_eq!(pick(&vs, "r\0d\0alice").name, first);
        }
    }
}
