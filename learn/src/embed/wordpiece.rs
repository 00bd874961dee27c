//! A fast path for BERT WordPiece tokenization (the static encoder's tokenizer): the same ids as
//! the `tokenizers` pipeline (BertNormalizer with lowercasing, BertPreTokenizer, WordPiece),
//! four to five times faster on English prompts, which makes tokenization no longer most of a
//! decision.
//!
//! BERT tokenization is local to whitespace-separated words (the normaliser maps `\t\n\r` to a
//! space and works character by character; the pre-tokenizer splits on whitespace first), so a
//! text's ids are its words' ids in order. A word of printable ASCII is split here into
//! alphanumeric runs and single punctuation marks, each lowercased and matched greedily against
//! the vocabulary, exactly as `WordPiece::tokenize` does; any other word (accents, CJK, control
//! or non-ASCII whitespace characters) goes through the full pipeline on its own. A text that
//! contains a special token's literal (`[MASK]` …) takes the full pipeline whole. Used only when
//! the tokenizer is of exactly this shape; `Encoder::check_tokenization` compares both paths.

use rustc_hash::FxHashMap;
use tokenizers::{
    models::ModelWrapper, normalizers::NormalizerWrapper, pre_tokenizers::PreTokenizerWrapper,
    Model, Tokenizer,
};

/// The vocabulary and settings of a BERT WordPiece tokenizer.
pub(crate) struct FastWordPiece {
    /// Looked up once per pre-token at least: a fast hash (the keys are the fixed vocabulary).
    vocab: FxHashMap<String, u32>,
    unk: u32,
    prefix: String,
    max_chars: usize,
    /// Literals of the special tokens, matched in the raw text before normalisation.
    specials: Vec<String>,
}

impl FastWordPiece {
    /// The fast path for `tokenizer`, if it is a lowercasing BERT WordPiece tokenizer.
    pub fn new(tokenizer: &Tokenizer) -> Option<FastWordPiece> {
        let Some(NormalizerWrapper::BertNormalizer(n)) = tokenizer.get_normalizer() else {
            return None;
        };
        // Lowercasing strips accents unless told otherwise; neither changes ASCII beyond case.
        if !(n.clean_text && n.lowercase && n.strip_accents != Some(false)) {
            return None;
        }
        let Some(PreTokenizerWrapper::BertPreTokenizer(_)) = tokenizer.get_pre_tokenizer() else {
            return None;
        };
        let ModelWrapper::WordPiece(wp) = tokenizer.get_model() else {
            return None;
        };
        let vocab: FxHashMap<String, u32> = wp.get_vocab().into_iter().collect();
        Some(FastWordPiece {
            unk: *vocab.get(&wp.unk_token)?,
            prefix: wp.continuing_subword_prefix.clone(),
            max_chars: wp.max_input_chars_per_word,
            specials: tokenizer
                .get_added_tokens_decoder()
                .values()
                .map(|t| t.content.clone())
                .collect(),
            vocab,
        })
    }

    /// The first `max` ids of `text`, or `None` when the text needs the full pipeline whole.
    /// `full` tokenizes one word that is not printable ASCII.
    pub fn ids<E>(
        &self,
        text: &str,
        max: usize,
        full: impl Fn(&str) -> Result<Vec<u32>, E>,
    ) -> Option<Result<Vec<u32>, E>> {
        if self.specials.iter().any(|s| text.contains(s.as_str())) {
            return None;
        }
        let mut ids = Vec::new();
        let mut piece = String::new();
        let mut lower = String::new();
        for word in text.split([' ', '\t', '\n', '\r']) {
            if ids.len() >= max {
                break;
            }
            if !word.bytes().all(|b| b.is_ascii_graphic()) {
                match full(word) {
                    Ok(w) => ids.extend(w),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            let bytes = word.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let end = if bytes[i].is_ascii_alphanumeric() {
                    i + bytes[i..]
                        .iter()
                        .take_while(|b| b.is_ascii_alphanumeric())
                        .count()
                } else {
                    i + 1
                };
                lower.clear();
                lower.push_str(&word[i..end]);
                lower.make_ascii_lowercase();
                self.word_ids(&lower, &mut piece, &mut ids);
                i = end;
            }
        }
        ids.truncate(max);
        Some(Ok(ids))
    }

    /// WordPiece of one lowercase ASCII pre-token: greedy longest match from the left, pieces
    /// after the first carry the prefix; a word with an unmatched rest is one unknown token.
    fn word_ids(&self, word: &str, piece: &mut String, ids: &mut Vec<u32>) {
        if word.len() > self.max_chars {
            ids.push(self.unk);
            return;
        }
        let first = ids.len();
        let mut start = 0;
        while start < word.len() {
            let found = (start + 1..=word.len()).rev().find_map(|end| {
                piece.clear();
                if start > 0 {
                    piece.push_str(&self.prefix);
                }
                piece.push_str(&word[start..end]);
                self.vocab.get(piece.as_str()).map(|id| (*id, end))
            });
            match found {
                Some((id, end)) => {
                    ids.push(id);
                    start = end;
                }
                None => {
                    ids.truncate(first);
                    ids.push(self.unk);
                    return;
                }
            }
        }
    }
}
