//! Prompt encoders: text → unit-length sentence embedding, on CPU, behind the [`Embed`] trait.
//! One implementation for serving, training and evals, with the kind chosen by the directory's
//! `manifest.json`:
//!
//! - `static` ([`potion`]): potion-base-8M static embeddings, the default — the mean of the
//!   prompt's token rows of one matrix, L2-normalised: microseconds, and bit-identical on every
//!   x86-64 CPU. Files made by `scripts/setup_static_encoder.sh` under `models/encoder-potion/`.
//! - `onnx` ([`onnx`]): all-MiniLM-L6-v2, int8 ONNX, run by `ort`. Files made by
//!   `scripts/setup_encoder.sh` under `models/encoder/`. About 0.1 ms per token.
//! - [`fake::FakeEncoder`]: a deterministic hash embedding for tests of routing logic that need
//!   no model files.
//!
//! What is embedded for a chat request is fixed by [`crate::prompt::prompt_text`].

pub mod fake;
pub mod onnx;
pub mod potion;
mod wordpiece;

use crate::LearnError;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where the setup script puts the MiniLM encoder.
pub const DEFAULT_DIR: &str = "models/encoder";
/// The command that creates or repairs the MiniLM encoder files.
pub const SETUP_COMMAND: &str = "scripts/setup_encoder.sh";
/// Where the setup script puts the static encoder (the default artifact's encoder).
pub const STATIC_DIR: &str = "models/encoder-potion";
/// The command that creates or repairs the static encoder files.
pub const STATIC_SETUP_COMMAND: &str = "scripts/setup_static_encoder.sh";

/// The directory the setup scripts give an encoder id: the static one for potion, else MiniLM's.
pub fn dir_for(encoder_id: &str) -> &'static str {
    if encoder_id.starts_with("potion") {
        STATIC_DIR
    } else {
        DEFAULT_DIR
    }
}

/// An encoder: what learned routing needs of one.
pub trait Embed: Send + Sync {
    /// The encoder id an artifact records (`manifest.encoder.id`).
    fn id(&self) -> &str;
    /// Length of every embedding.
    fn dimension(&self) -> usize;
    /// Embeds one text; the result has unit length (or is all zeros for a text without tokens).
    fn embed(&self, text: &str) -> Result<Vec<f32>, LearnError>;
    /// Token count of a text as the encoder sees it (after truncation).
    fn token_count(&self, text: &str) -> usize;
    /// Whether embedding a short text is a few microseconds of lookups and sums (a static
    /// encoder), cheap enough to run on the request's own thread; false for a neural network.
    fn is_cheap(&self) -> bool {
        false
    }
}

/// `manifest.json` written by the exporter.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// `onnx` (default) or `static`.
    #[serde(default = "onnx_kind")]
    pub kind: String,
    pub encoder_id: String,
    pub dimension: usize,
    pub max_tokens: usize,
    pub model_sha256: String,
}

fn onnx_kind() -> String {
    "onnx".into()
}

/// An encoder loaded from a directory: static or ONNX, as its manifest says.
pub struct Encoder {
    pub manifest: Manifest,
    backend: Backend,
}

enum Backend {
    Onnx(onnx::Onnx),
    Static(potion::Static),
}

/// The checked files of an encoder directory.
pub(crate) struct Files {
    pub manifest: Manifest,
    pub model: Vec<u8>,
    pub model_path: PathBuf,
    pub tokenizer: tokenizers::Tokenizer,
    pub dir: PathBuf,
    pub setup: &'static str,
}

impl Files {
    /// A file of the directory that must exist.
    pub fn require(&self, name: &str) -> Result<PathBuf, LearnError> {
        require(&self.dir, name, self.setup)
    }
}

fn require(dir: &Path, name: &str, setup: &'static str) -> Result<PathBuf, LearnError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(LearnError::Missing {
            what: "encoder",
            path: p,
            fix: setup,
        })
    }
}

/// Reads and checks the manifest, model (sha256) and tokenizer of an encoder directory.
fn read_files(dir: &Path) -> Result<Files, LearnError> {
    let setup = if dir.join("model.safetensors").exists() {
        STATIC_SETUP_COMMAND
    } else {
        SETUP_COMMAND
    };
    let bad = LearnError::BadFile;
    let manifest_path = require(dir, "manifest.json", setup)?;
    let manifest: Manifest = serde_json::from_str(
        &std::fs::read_to_string(&manifest_path)
            .map_err(|e| bad(format!("cannot read {}: {e}", manifest_path.display())))?,
    )
    .map_err(|e| {
        bad(format!(
            "{} is not a valid encoder manifest ({e}); run `{setup}`",
            manifest_path.display()
        ))
    })?;
    let model_name = match manifest.kind.as_str() {
        "onnx" => "model.onnx",
        "static" => "model.safetensors",
        other => {
            return Err(bad(format!(
                "{}: unknown encoder kind {other:?} (expected \"onnx\" or \"static\")",
                manifest_path.display()
            )))
        }
    };
    let model_path = require(dir, model_name, setup)?;
    let tokenizer_path = require(dir, "tokenizer.json", setup)?;
    let model = std::fs::read(&model_path)
        .map_err(|e| bad(format!("cannot read {}: {e}", model_path.display())))?;
    let digest = format!("{:x}", Sha256::digest(&model));
    if digest != manifest.model_sha256 {
        return Err(bad(format!(
            "{} is corrupt or from another export (sha256 {digest}, manifest says {}); delete it and run `{setup}`",
            model_path.display(),
            manifest.model_sha256
        )));
    }
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
        bad(format!(
            "cannot load {}: {e}; run `{setup}`",
            tokenizer_path.display()
        ))
    })?;
    Ok(Files {
        manifest,
        model,
        model_path,
        tokenizer,
        dir: dir.to_path_buf(),
        setup,
    })
}

impl Encoder {
    /// Loads the encoder from `dir`, checking every file; an ONNX encoder gets `sessions`
    /// sessions of `threads` intra-op threads each. Errors name the file and the command that
    /// fixes it.
    pub fn load(dir: &Path, sessions: usize, threads: usize) -> Result<Encoder, LearnError> {
        let files = read_files(dir)?;
        let manifest = files.manifest.clone();
        let backend = if manifest.kind == "static" {
            Backend::Static(potion::Static::new(files)?)
        } else {
            Backend::Onnx(onnx::Onnx::new(files, sessions, threads)?)
        };
        Ok(Encoder { manifest, backend })
    }

    /// Embeds texts, each alone (see [`onnx`] for why batching would change embeddings).
    pub fn embed_all(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LearnError> {
        texts.iter().map(|t| self.embed(t)).collect()
    }

    /// Checks that the token ids the encoder embeds for `text` are those of the full
    /// `tokenizers` pipeline (the static encoder tokenizes on a fast path, see `wordpiece`).
    pub fn check_tokenization(&self, text: &str) -> Result<(), String> {
        let Backend::Static(s) = &self.backend else {
            return Ok(());
        };
        let max = self.manifest.max_tokens;
        let (fast, full) = (s.ids(text), s.reference_ids(text, max));
        match (fast, full) {
            (Ok(a), Ok(b)) if a == b => Ok(()),
            (a, b) => Err(format!("{text:?}: fast path {a:?}, tokenizer {b:?}")),
        }
    }
}

impl Embed for Encoder {
    fn id(&self) -> &str {
        &self.manifest.encoder_id
    }

    fn dimension(&self) -> usize {
        self.manifest.dimension
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, LearnError> {
        match &self.backend {
            Backend::Static(s) => s.embed(text, self.manifest.dimension),
            Backend::Onnx(o) => o.embed(text, self.manifest.dimension),
        }
    }

    fn token_count(&self, text: &str) -> usize {
        match &self.backend {
            Backend::Static(s) => s.ids(text).map(|i| i.len()).unwrap_or(0),
            Backend::Onnx(o) => o.token_count(text),
        }
    }

    fn is_cheap(&self) -> bool {
        matches!(self.backend, Backend::Static(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_fix() {
        let err = Encoder::load(Path::new("/nonexistent/encoder"), 1, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("manifest.json is missing"), "{err}");
        assert!(err.contains(SETUP_COMMAND));
    }
}
