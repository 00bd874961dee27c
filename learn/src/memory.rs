//! The outcome memory of an artifact (`memory.bin`): every training prompt's embedding, stored as
//! int8 codes with a per-row scale, and each candidate's good-answer label for it (or none, when
//! that candidate never answered the prompt — production traffic labels one model per prompt).
//! A nearest-neighbour search over it gives each candidate's local good-answer rate and the
//! support of a decision (how similar the closest training prompts are).
//!
//! Integer dot products make the search the same bits on every machine. File layout, all
//! little-endian: the magic `SYMEM001`, `u32` rows, dimension and models, then `rows × dimension`
//! `i8` codes, `rows` `f32` scales, and `rows × models` `i8` labels (1 good, 0 not good, −1 none).

use crate::{round6, LearnError};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

const MAGIC: &[u8; 8] = b"SYMEM001";

/// A label in the memory: the candidate's answer was good, not good, or is unknown.
pub const GOOD: i8 = 1;
pub const NOT_GOOD: i8 = 0;
pub const UNKNOWN: i8 = -1;

/// How well the training data covers a prompt.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Support {
    /// Cosine similarity of the nearest training prompt.
    pub nearest: f64,
    /// Mean cosine similarity of the `support_k` nearest: the value compared with the threshold.
    pub similarity: f64,
}

/// Training prompts' embeddings and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub rows: usize,
    pub dimension: usize,
    pub models: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    labels: Vec<i8>,
    /// Rows labelled per candidate (derived from `labels`).
    labelled: Vec<usize>,
}

/// Rows labelled per candidate in a `rows × models` label matrix.
fn count_labelled(labels: &[i8], models: usize) -> Vec<usize> {
    (0..models)
        .map(|m| {
            labels
                .iter()
                .skip(m)
                .step_by(models.max(1))
                .filter(|l| **l != UNKNOWN)
                .count()
        })
        .collect()
}

/// Cosine similarity at or above which a memory row is the same prompt as the query (identical
/// text embeds identically; int8 codes put it within a few 1e-4 of 1).
pub const SAME_PROMPT: f32 = 0.999;

/// Leaves out of `similarities` the rows of the query's own prompt (similarity at least
/// [`SAME_PROMPT`]) by setting them to −∞: what the memory would say of the prompt had it not
/// been trained on.
pub fn leave_out_same(similarities: &mut [f32]) {
    for s in similarities.iter_mut().filter(|s| **s >= SAME_PROMPT) {
        *s = f32::NEG_INFINITY;
    }
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

/// The integer dot product of a row's codes with the query's, in lanes of 16 so that the compiler
/// vectorises it. The sum is exact (i32, for any dimension under 130,000), so every variant gives
/// the same value.
#[inline(always)]
fn dot_lanes(row: &[i8], query: &[i16]) -> i32 {
    const LANES: usize = 16;
    let mut acc = [0i32; LANES];
    let (rows, row_tail) = row.as_chunks::<LANES>();
    let (queries, query_tail) = query.as_chunks::<LANES>();
    let tail: i32 = row_tail
        .iter()
        .zip(query_tail)
        .map(|(a, b)| i32::from(*a) * i32::from(*b))
        .sum();
    for (r, q) in rows.iter().zip(queries) {
        for i in 0..LANES {
            acc[i] += i32::from(r[i]) * i32::from(q[i]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// Every row's dot product with the query.
#[inline(always)]
fn dots_lanes(codes: &[i8], dimension: usize, query: &[i16]) -> Vec<i32> {
    codes
        .chunks_exact(dimension.max(1))
        .map(|row| dot_lanes(row, query))
        .collect()
}

/// [`dots_lanes`] with AVX2 instructions: 16 codes widened to i16 and multiplied pairwise into
/// eight i32 sums at a time (`vpmovsxbw`, `vpmaddwd`), exact like the portable loop.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(codes: &[i8], dimension: usize, query: &[i16]) -> Vec<i32> {
    use std::arch::x86_64::*;
    const LANES: usize = 16;
    let whole = dimension / LANES * LANES;
    codes
        .chunks_exact(dimension.max(1))
        .map(|row| {
            let mut acc = _mm256_setzero_si256();
            for i in (0..whole).step_by(LANES) {
                // SAFETY: i + 16 <= whole <= row.len() == query.len(); unaligned loads.
                let r = _mm256_cvtepi8_epi16(_mm_loadu_si128(row.as_ptr().add(i).cast()));
                let q = _mm256_loadu_si256(query.as_ptr().add(i).cast());
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(r, q));
            }
            let mut lanes = [0i32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc);
            lanes.iter().sum::<i32>()
                + row[whole..]
                    .iter()
                    .zip(&query[whole..])
                    .map(|(a, b)| i32::from(*a) * i32::from(*b))
                    .sum::<i32>()
        })
        .collect()
}

/// [`dots_lanes`] with AVX-512 VNNI: 64 codes at a time, offset by 128 to be unsigned bytes and
/// multiplied with the query's codes (signed bytes) into sixteen i32 sums (`vpdpbusd`, which
/// does not saturate); the offset's share, `128 × Σ query`, is taken off each row's sum. Exact
/// like the portable loop.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dots_vnni(codes: &[i8], dimension: usize, query: &[i16]) -> Vec<i32> {
    use std::arch::x86_64::*;
    const LANES: usize = 64;
    let width = dimension.max(1);
    let whole = dimension / LANES * LANES;
    // The query's codes fit in i8 (they are quantised to ±127).
    let narrow: Vec<i8> = query.iter().map(|q| *q as i8).collect();
    let offset: i32 = 128 * query[..whole].iter().map(|q| i32::from(*q)).sum::<i32>();
    let flip = _mm512_set1_epi8(i8::MIN);
    let rows = codes.len() / width;
    let mut out = vec![0i32; rows];
    let mut row = 0;
    // Four rows at a time: each query chunk is loaded once for the four, and their sixteen
    // lanes are added across together (pairs interleaved, then the 128-bit quarters added).
    while row + 4 <= rows {
        let base = codes.as_ptr().add(row * width);
        let mut acc = [_mm512_setzero_si512(); 4];
        for i in (0..whole).step_by(LANES) {
            // SAFETY: row + 4 <= rows, i + 64 <= whole <= width; unaligned loads.
            let q = _mm512_loadu_si512(narrow.as_ptr().add(i).cast());
            for (j, a) in acc.iter_mut().enumerate() {
                let r = _mm512_loadu_si512(base.add(j * width + i).cast());
                *a = _mm512_dpbusd_epi32(*a, _mm512_xor_si512(r, flip), q);
            }
        }
        let [a, b, c, d] = acc;
        let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
        let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
        let half = _mm256_add_epi32(
            _mm512_castsi512_si256(abcd),
            _mm512_extracti64x4_epi64::<1>(abcd),
        );
        let quarter = _mm_add_epi32(
            _mm256_castsi256_si128(half),
            _mm256_extracti128_si256::<1>(half),
        );
        _mm_storeu_si128(out.as_mut_ptr().add(row).cast(), quarter);
        row += 4;
    }
    while row < rows {
        let base = codes.as_ptr().add(row * width);
        let mut acc = _mm512_setzero_si512();
        for i in (0..whole).step_by(LANES) {
            // SAFETY: row < rows, i + 64 <= whole <= width; unaligned loads.
            let q = _mm512_loadu_si512(narrow.as_ptr().add(i).cast());
            let r = _mm512_loadu_si512(base.add(i).cast());
            acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(r, flip), q);
        }
        out[row] = _mm512_reduce_add_epi32(acc);
        row += 1;
    }
    for (sum, codes) in out.iter_mut().zip(codes.chunks_exact(width)) {
        *sum -= offset;
        *sum += codes[whole..]
            .iter()
            .zip(&query[whole..])
            .map(|(a, b)| i32::from(*a) * i32::from(*b))
            .sum::<i32>();
    }
    out
}

/// Every row's dot product with the query, with the fastest code this CPU runs (all exact, so
/// the same values everywhere).
fn dots(codes: &[i8], dimension: usize, query: &[i16]) -> Vec<i32> {
    #[cfg(target_arch = "x86_64")]
    {
        if dimension >= 64
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            // SAFETY: the CPU supports these, checked just above.
            return unsafe { dots_vnni(codes, dimension, query) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { dots_avx2(codes, dimension, query) };
        }
    }
    dots_lanes(codes, dimension, query)
}

/// The `k` best (similarity, row) pairs, most similar first, ties to the lower row: a heap whose
/// top is the worst of the best so far, so most rows are rejected by one comparison.
fn best(k: usize, rows: impl Iterator<Item = (usize, f32)>) -> Vec<(f32, usize)> {
    let mut heap: BinaryHeap<Neighbour> = BinaryHeap::with_capacity(k + 1);
    if k == 0 {
        return vec![];
    }
    // The worst similarity kept once the heap is full: a row below it is rejected at once
    // (`<` on two floats that are not NaN agrees with the total order).
    let mut floor = f32::NAN;
    for (row, sim) in rows {
        if sim < floor {
            continue;
        }
        let candidate = Neighbour(sim, row);
        if heap.len() < k {
            heap.push(candidate);
        } else if let Some(mut worst) = heap.peek_mut().filter(|worst| candidate < **worst) {
            *worst = candidate;
        } else {
            continue;
        }
        if heap.len() == k {
            floor = heap.peek().map_or(f32::NAN, |worst| worst.0);
        }
    }
    heap.into_sorted_vec()
        .into_iter()
        .map(|Neighbour(sim, row)| (sim, row))
        .collect()
}

/// The key under which `f32::total_cmp` orders a similarity, as an integer.
fn order_key(s: f32) -> i32 {
    let bits = s.to_bits() as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// [`best`] over every row of `similarities`, without a heap: a floor is read off every eighth
/// row (the similarity that somewhat more than `k` rows reach), the rows at or above it are
/// gathered, the `k` best selected and sorted. Every row of the `k` best reaches the floor whenever `k` rows do, so the result is
/// [`best`]'s; when fewer do, [`best`] runs.
fn best_of_all(k: usize, similarities: &[f32]) -> Vec<(f32, usize)> {
    const STRIDE: usize = 8;
    if k == 0 || k * STRIDE >= similarities.len() {
        return best(k, similarities.iter().copied().enumerate());
    }
    let mut sample: Vec<i32> = similarities
        .iter()
        .step_by(STRIDE)
        .map(|s| order_key(*s))
        .collect();
    // The sample's rank whose similarity about `k + 3 sqrt(k) + 64` rows reach: rarely fewer
    // than `k` (a standard deviation of the count is about `sqrt(k)` rows).
    let rank = (k / STRIDE + 3 * (k / STRIDE).isqrt() + 8).min(sample.len() - 1);
    let (_, floor, _) = sample.select_nth_unstable_by(rank, |a, b| b.cmp(a));
    let floor = *floor;
    let mut above: Vec<Neighbour> = similarities
        .iter()
        .enumerate()
        .filter(|(_, s)| order_key(**s) >= floor)
        .map(|(row, s)| Neighbour(*s, row))
        .collect();
    if above.len() < k {
        return best(k, similarities.iter().copied().enumerate());
    }
    if above.len() > k {
        above.select_nth_unstable(k - 1);
        above.truncate(k);
    }
    above.sort_unstable();
    above
        .into_iter()
        .map(|Neighbour(sim, row)| (sim, row))
        .collect()
}

/// A query's similarities to every row with its `depth` nearest rows found once, in the order
/// of [`best`]: the support and each candidate's labelled neighbours are read off that prefix
/// (one pass over the rows instead of one per candidate), and a candidate with too few labelled
/// rows in it is searched over every row. The same neighbours as searching every time.
pub struct Ranked<'a> {
    similarities: &'a [f32],
    top: Vec<(f32, usize)>,
}

impl Ranked<'_> {
    /// The `k` most similar rows (those left out at −∞ last), as [`Memory::nearest_in`].
    pub fn nearest(&self, k: usize) -> Vec<(f32, usize)> {
        if k <= self.top.len() || self.top.len() == self.similarities.len() {
            return self.top.iter().take(k).copied().collect();
        }
        best_of_all(k, self.similarities)
    }

    /// The `k` most similar rows labelled for candidate `model`, leaving out rows at −∞ (a
    /// prompt's own rows, for leave-one-out estimates; see [`leave_out_same`]).
    pub fn nearest_labelled(&self, memory: &Memory, model: usize, k: usize) -> Vec<(f32, usize)> {
        let keep =
            |row: usize, s: f32| s != f32::NEG_INFINITY && memory.label(row, model) != UNKNOWN;
        let found: Vec<(f32, usize)> = self
            .top
            .iter()
            .copied()
            .filter(|(s, row)| keep(*row, *s))
            .take(k)
            .collect();
        if found.len() == k || self.top.len() == self.similarities.len() {
            return found;
        }
        best(
            k,
            self.similarities
                .iter()
                .copied()
                .enumerate()
                .filter(|(row, s)| keep(*row, *s)),
        )
    }

    /// How well the memory covers the query: the nearest row's similarity and the mean of the
    /// `k` nearest.
    pub fn support(&self, k: usize) -> Support {
        let nearest = self.nearest(k);
        let mean =
            nearest.iter().map(|n| f64::from(n.0)).sum::<f64>() / nearest.len().max(1) as f64;
        Support {
            nearest: round6(nearest.first().map_or(0.0, |n| f64::from(n.0))),
            similarity: round6(mean),
        }
    }
}

/// A row and its similarity, ordered best first: higher similarity, then the lower row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Neighbour(f32, usize);

impl Eq for Neighbour {}

impl Ord for Neighbour {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Neighbour {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
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
            labelled: count_labelled(&labels, models),
            labels,
        }
    }

    /// The label of `row` for candidate `model`.
    pub fn label(&self, row: usize, model: usize) -> i8 {
        self.labels[row * self.models + model]
    }

    /// Every row's cosine similarity to `query` (exact integer dot products, then the scales).
    pub fn similarities(&self, query: &[f32]) -> Vec<f32> {
        let (q, qs) = quantize(query);
        let q: Vec<i16> = q.into_iter().map(i16::from).collect();
        dots(&self.codes, self.dimension, &q)
            .into_iter()
            .zip(&self.scales)
            .map(|(dot, scale)| dot as f32 * scale * qs)
            .collect()
    }

    /// The `k` most similar rows to `query` (cosine on unit vectors), most similar first; ties
    /// go to the lower row.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(f32, usize)> {
        self.nearest_in(&self.similarities(query), k)
    }

    /// How well the memory covers a query, from its `similarities` to every row: the nearest
    /// row's similarity and the mean of the `k` nearest.
    pub fn support(&self, similarities: &[f32], k: usize) -> Support {
        self.ranked(similarities, k).support(k)
    }

    /// The `k` most similar rows, from `similarities`.
    pub fn nearest_in(&self, similarities: &[f32], k: usize) -> Vec<(f32, usize)> {
        best_of_all(k, similarities)
    }

    /// `similarities` with their `depth` nearest rows found ([`Ranked`]).
    pub fn ranked<'a>(&self, similarities: &'a [f32], depth: usize) -> Ranked<'a> {
        Ranked {
            similarities,
            top: self.nearest_in(similarities, depth),
        }
    }

    /// How many rows are labelled for candidate `model`.
    pub fn labelled(&self, model: usize) -> usize {
        self.labelled.get(model).copied().unwrap_or(0)
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
            bytes[8 + 4 * i..]
                .first_chunk::<4>()
                .map_or(0, |b| u32::from_le_bytes(*b)) as usize
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
        let labels: Vec<i8> = labels.iter().map(|b| *b as i8).collect();
        Ok(Memory {
            rows,
            dimension,
            models,
            codes: codes.iter().map(|b| *b as i8).collect(),
            scales: scales
                .as_chunks::<4>()
                .0
                .iter()
                .map(|c| f32::from_le_bytes(*c))
                .collect(),
            labelled: count_labelled(&labels, models),
            labels,
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
    fn every_dot_product_variant_is_exact() {
        let mut x: u32 = 1;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((x >> 16) % 255) as i16 - 127
        };
        // Nine rows: the four-row kernels and the rows left over.
        for dimension in [1, 15, 16, 17, 63, 64, 65, 256, 320, 384] {
            let codes: Vec<i8> = (0..9 * dimension).map(|_| next() as i8).collect();
            let query: Vec<i16> = (0..dimension).map(|_| next()).collect();
            let naive: Vec<i32> = codes
                .chunks_exact(dimension)
                .map(|row| {
                    row.iter()
                        .zip(&query)
                        .map(|(a, b)| i32::from(*a) * i32::from(*b))
                        .sum()
                })
                .collect();
            assert_eq!(
                dots_lanes(&codes, dimension, &query),
                naive,
                "dimension {dimension}"
            );
            assert_eq!(
                dots(&codes, dimension, &query),
                naive,
                "dimension {dimension}"
            );
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: checked just above.
                let avx2 = unsafe { dots_avx2(&codes, dimension, &query) };
                assert_eq!(avx2, naive, "dimension {dimension}");
            }
        }
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

    #[test]
    fn ranked_neighbours_are_those_of_a_search_over_every_row() {
        let mut x: u32 = 7;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            x >> 16
        };
        let rows = 500;
        // Few distinct similarities (ties), rows left out at −∞, and sparse labels.
        let similarities: Vec<f32> = (0..rows)
            .map(|_| match next() % 50 {
                0 => f32::NEG_INFINITY,
                v => v as f32 / 50.0,
            })
            .collect();
        let labels: Vec<i8> = (0..rows * 3)
            .map(|i| match (i % 3, next() % 10) {
                (0, _) => GOOD,
                (1, v) if v < 3 => NOT_GOOD,
                (2, 0) => GOOD,
                _ => UNKNOWN,
            })
            .collect();
        let m = Memory {
            rows,
            dimension: 0,
            models: 3,
            codes: vec![],
            scales: vec![],
            labelled: count_labelled(&labels, 3),
            labels,
        };
        let full =
            |model: usize, k: usize| {
                best(
                    k,
                    similarities.iter().copied().enumerate().filter(|(row, s)| {
                        *s != f32::NEG_INFINITY && m.label(*row, model) != UNKNOWN
                    }),
                )
            };
        // The floor read off every eighth row, on shuffled, ascending and descending rows.
        let mut ascending = similarities.clone();
        ascending.sort_by(f32::total_cmp);
        let descending: Vec<f32> = ascending.iter().rev().copied().collect();
        for sims in [&similarities, &ascending, &descending] {
            for k in [1, 5, 40, 61, 62, 63, 100] {
                let all = best(k, sims.iter().copied().enumerate());
                assert_eq!(best_of_all(k, sims), all, "k {k}");
            }
        }
        for depth in [0, 1, 10, 60, 200, rows, rows + 5] {
            let ranked = m.ranked(&similarities, depth);
            for k in [0, 1, 5, 40, 100, rows] {
                assert_eq!(
                    ranked.nearest(k),
                    m.nearest_in(&similarities, k),
                    "{depth} {k}"
                );
                for model in 0..3 {
                    assert_eq!(
                        ranked.nearest_labelled(&m, model, k),
                        full(model, k),
                        "depth {depth}, model {model}, k {k}"
                    );
                }
            }
        }
    }
}
