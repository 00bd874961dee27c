//! The static encoder (potion-base-8M): the mean of the prompt's token rows of one embedding
//! matrix, L2-normalised. Plain f32 sums in a fixed order, so bit-identical on every x86-64 CPU.

use super::wordpiece::FastWordPiece;
use super::Files;
use crate::prompt::ELLIPSIS;
use crate::LearnError;
use serde_json::Value;

pub(crate) struct Static {
    tokenizer: tokenizers::Tokenizer,
    /// The fast tokenization path, when the tokenizer is of its shape.
    fast: Option<FastWordPiece>,
    max_tokens: usize,
    /// One row of `dimension` values per token id.
    rows: Vec<f32>,
    /// The ids of [`ELLIPSIS`], a word outside ASCII in every long prompt's text: found once
    /// by the full pipeline (a word's ids do not depend on the words around it).
    ellipsis: Vec<u32>,
}

impl Static {
    pub fn new(files: Files) -> Result<Static, LearnError> {
        let rows = rows(&files.model, files.manifest.dimension).map_err(|e| {
            LearnError::BadFile(format!(
                "{}: {e}; run `{}`",
                files.model_path.display(),
                files.setup
            ))
        })?;
        let mut s = Static {
            fast: FastWordPiece::new(&files.tokenizer),
            tokenizer: files.tokenizer,
            max_tokens: files.manifest.max_tokens,
            rows,
            ellipsis: vec![],
        };
        s.ellipsis = s.reference_ids(ELLIPSIS, usize::MAX)?;
        Ok(s)
    }

    /// Token ids: no special tokens, at most `max_tokens` (the fast path where it applies).
    pub fn ids(&self, text: &str) -> Result<Vec<u32>, LearnError> {
        match &self.fast {
            Some(fast) => fast
                .ids(text, self.max_tokens, |word| {
                    if word == ELLIPSIS {
                        return Ok(self.ellipsis.clone());
                    }
                    self.reference_ids(word, usize::MAX)
                })
                .unwrap_or_else(|| self.reference_ids(text, self.max_tokens)),
            None => self.reference_ids(text, self.max_tokens),
        }
    }

    /// At most `max` token ids from the full `tokenizers` pipeline.
    pub fn reference_ids(&self, text: &str, max: usize) -> Result<Vec<u32>, LearnError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LearnError::Encode(format!("tokenization failed: {e}")))?;
        let ids = encoding.get_ids();
        Ok(ids[..ids.len().min(max)].to_vec())
    }

    /// Mean of the token rows, L2-normalised (all zeros for a text without tokens).
    pub fn embed(&self, text: &str, dim: usize) -> Result<Vec<f32>, LearnError> {
        let mut v = vec![0f32; dim];
        for id in self.ids(text)? {
            let row = self
                .rows
                .get(id as usize * dim..(id as usize + 1) * dim)
                .ok_or_else(|| {
                    LearnError::Encode(format!("token id {id} is outside the embedding matrix"))
                })?;
            for (a, b) in v.iter_mut().zip(row) {
                *a += b;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            for a in &mut v {
                *a /= norm;
            }
        }
        Ok(v)
    }
}

/// The `embeddings` tensor (f32, tokens × `dimension`) of a safetensors file.
fn rows(bytes: &[u8], dimension: usize) -> Result<Vec<f32>, String> {
    let n = bytes
        .first_chunk::<8>()
        .map(|b| u64::from_le_bytes(*b) as usize)
        .ok_or("not a safetensors file (too short)")?;
    let header: Value = bytes
        .get(8..8 + n)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or("not a safetensors file (bad header)")?;
    let t = &header["embeddings"];
    let shape: Vec<usize> = t["shape"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64().map(|x| x as usize))
                .collect()
        })
        .unwrap_or_default();
    let (start, end) = (
        t["data_offsets"][0].as_u64().unwrap_or(0) as usize,
        t["data_offsets"][1].as_u64().unwrap_or(0) as usize,
    );
    if t["dtype"] != "F32" || shape.len() != 2 || shape[1] != dimension {
        return Err(format!(
            "tensor `embeddings` is {} {:?}, expected F32 [tokens, {dimension}]",
            t["dtype"], shape
        ));
    }
    let data = bytes
        .get(8 + n + start..8 + n + end)
        .filter(|d| d.len() == shape[0] * shape[1] * 4)
        .ok_or("tensor `embeddings` lies outside the file")?;
    Ok(data
        .as_chunks::<4>()
        .0
        .iter()
        .map(|c| f32::from_le_bytes(*c))
        .collect())
}
