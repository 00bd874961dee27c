//! A deterministic encoder for tests: each whitespace-separated word adds a pseudo-random
//! ±1 vector seeded by its [`stable_hash`](crate::hash::stable_hash); the sum is L2-normalised.
//! Prompts that share words get similar embeddings, so routing logic can be tested end to end
//! without model files. Never used for serving.

use super::Embed;
use crate::hash::stable_hash;
use crate::LearnError;

pub struct FakeEncoder {
    id: String,
    dimension: usize,
}

impl FakeEncoder {
    /// A fake encoder that claims to be `id` with `dimension`-long embeddings.
    pub fn new(id: &str, dimension: usize) -> FakeEncoder {
        FakeEncoder {
            id: id.to_string(),
            dimension,
        }
    }
}

impl Embed for FakeEncoder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, LearnError> {
        let mut v = vec![0f32; self.dimension];
        for word in text.split_whitespace() {
            let mut h = stable_hash(&word.to_lowercase());
            for (i, x) in v.iter_mut().enumerate() {
                if i % 64 == 0 {
                    h = stable_hash(&format!("{h}:{i}"));
                }
                *x += if (h >> (i % 64)) & 1 == 1 { 1.0 } else { -1.0 };
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(v)
    }

    fn token_count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_unit_and_word_sensitive() {
        let e = FakeEncoder::new("fake", 32);
        let a = e.embed("what is two plus two").unwrap();
        assert_eq!(a, e.embed("what is two plus two").unwrap());
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        let near = e.embed("what is two plus three").unwrap();
        let far = e.embed("write a sonnet about autumn leaves").unwrap();
        assert!(dot(&a, &near) > dot(&a, &far));
        assert!(e.embed("").unwrap().iter().all(|x| *x == 0.0));
    }
}
