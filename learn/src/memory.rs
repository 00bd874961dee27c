//! The outcome memory of an artifact (`memory.bin`): every training prompt's embedding, stored as
//! int8 codes with a per-row scale, and each candidate's good-answer label for it (or none, when
//! that candidate never answered the prompt — production traffic labels one model per prompt).
//! A nearest-neighbour search over it gives each candidate's local good-answer rate and the
//! support of a decision (how similar the closest training prompts are).
//!
//! Integer dot products make the search the same bits on every machine. File layout, all
//! little-endian: the magic `SYMEM001`, `u32` rows, dimension and models, then `rows × dimension`
//! `i8` codes, `rows` `f32` scales, and `rows × models` `i8` labels (1 good, 0 not good, −1 none).

use crate::LearnError;
use std::path::Path;

const MAGIC: &[u8; 8] = b"SYMEM001";

/// A label in the memory: the candidate's answer was good, not good, or is unknown.
pub const GOOD: i8 = 1;
pub const NOT_GOOD: i8 = 0;
pub const UNKNOWN: i8 = -1;

/// Training prompts' embeddings and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub rows: usize,
    pub dimension: usize,
    pub models: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    labels: Vec<i8>,
}

/// int8 codes of a vector and the scale that maps them back (`value ≈ code × scale`).
fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round() as i8).collect(), scale)
}

impl Memory {
    /// Builds a memory from embeddings and a `rows × models` label matrix.
    pub fn build(embeddings: &[&[f32]], labels: Vec<i8>, models: usize) -> Memory {
        let dimension = embeddings.first().map_or(0, |e| e.len());
        let mut codes = Vec::with_capacity(embeddings.len() * dimension);
        let mut scales = Vec::with_capacity(embeddings.len());
        for e in embeddings {
            let (c, s) = quantize(e);
            codes.extend(c);
            scales.push(s);
        }
        assert_eq!(
            labels.len(),
            embeddings.len() * models,
            "one label per row and model"
        );
        Memory {
            rows: embeddings.len(),
            dimension,
            models,
            codes,
            scales,
            labels,
        }
    }

    /// The label of `row` for candidate `model`.
    pub fn label(&self, row: usize, model: usize) -> i8 {
        self.labels[row * self.models + model]
    }

    /// The `k` most similar rows to `query` (cosine on unit vectors), most similar first; ties
    /// go to the lower row.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(f32, usize)> {
        let (q, qs) = quantize(query);
        let mut sims: Vec<(f32, usize)> = self
            .codes
            .chunks_exact(self.dimension.max(1))
            .zip(&self.scales)
            .enumerate()
            .map(|(r, (row, s))| {
                let dot: i32 = row
                    .iter()
                    .zip(&q)
                    .map(|(a, b)| i32::from(*a) * i32::from(*b))
                    .sum();
                (dot as f32 * s * qs, r)
            })
            .collect();
        let by_sim = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = k.min(sims.len());
        if k < sims.len() {
            sims.select_nth_unstable_by(k, by_sim);
            sims.truncate(k);
        }
        sims.sort_by(by_sim);
        sims
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.codes.len() + 4 * self.rows + self.labels.len());
        out.extend_from_slice(MAGIC);
        for n in [self.rows, self.dimension, self.models] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        out.extend(self.codes.iter().map(|c| *c as u8));
        for s in &self.scales {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend(self.labels.iter().map(|c| *c as u8));
        out
    }

    /// Reads `memory.bin`, checking its size against its header.
    pub fn read(path: &Path) -> Result<Memory, LearnError> {
        let bad = |why: String| {
            LearnError::BadFile(format!(
                "{}: {why}; retrain with `switchyard train`",
                path.display()
            ))
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(bad("not an outcome memory (bad magic)".into()));
        }
        let n = |i: usize| {
            u32::from_le_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes")) as usize
        };
        let (rows, dimension, models) = (n(0), n(1), n(2));
        let want = 20 + rows * dimension + 4 * rows + rows * models;
        if bytes.len() != want {
            return Err(bad(format!(
                "{} bytes, the header promises {want}",
                bytes.len()
            )));
        }
        let body = &bytes[20..];
        let (codes, rest) = body.split_at(rows * dimension);
        let (scales, labels) = rest.split_at(4 * rows);
        Ok(Memory {
            rows,
            dimension,
            models,
            codes: codes.iter().map(|b| *b as i8).collect(),
            scales: scales
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
            labels: labels.iter().map(|b| *b as i8).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn nearest_rows_come_first_and_the_file_round_trips() {
        let rows = [
            unit(&[1.0, 0.0, 0.1]),
            unit(&[0.0, 1.0, 0.0]),
            unit(&[0.9, 0.1, 0.0]),
        ];
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let m = Memory::build(
            &refs,
            vec![GOOD, NOT_GOOD, UNKNOWN, GOOD, NOT_GOOD, GOOD],
            2,
        );
        let nb = m.nearest(&unit(&[1.0, 0.0, 0.0]), 2);
        assert_eq!(nb.iter().map(|n| n.1).collect::<Vec<_>>(), vec![0, 2]);
        assert!(
            (nb[0].0 - 0.995).abs() < 0.01 && nb[1].0 < nb[0].0,
            "{nb:?}"
        );
        assert_eq!(m.label(1, 0), UNKNOWN);
        let dir = std::env::temp_dir().join(format!("symem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("memory.bin");
        std::fs::write(&p, m.to_bytes()).unwrap();
        assert_eq!(Memory::read(&p).unwrap(), m);
        std::fs::write(&p, &m.to_bytes()[..30]).unwrap();
        assert!(Memory::read(&p)
            .unwrap_err()
            .to_string()
            .contains("header promises"));
    }
}
