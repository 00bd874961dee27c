//! The prompt encoder: text → unit-length sentence embedding, on CPU. One implementation for
//! serving, training and evals, with two kinds chosen by the directory's `manifest.json`:
//!
//! - `onnx` (default): all-MiniLM-L6-v2, int8 ONNX, run by `ort`. Files made by
//!   `scripts/setup_encoder.sh` under `models/encoder/`: `model.onnx`, `tokenizer.json`,
//!   `manifest.json` and `libonnxruntime.so.1.31.1`. About 0.1 ms per token.
//! - `static`: potion-base-8M static embeddings (`"kind": "static"`): the mean of the
//!   prompt's token rows of one matrix, L2-normalised — microseconds, and bit-identical on every
//!   x86-64 CPU (plain f32 sums in a fixed order). Files made by
//!   `scripts/setup_static_encoder.sh` under `models/encoder-potion/`: `model.safetensors`,
//!   `tokenizer.json`, `manifest.json`.
//!
//! What is embedded for a chat request is fixed by [`prompt_text`].

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The ONNX Runtime library file shipped beside the model.
pub const ORT_LIBRARY: &str = "libonnxruntime.so.1.31.1";
/// Where the setup script puts the encoder.
pub const DEFAULT_DIR: &str = "models/encoder";
/// The command that creates or repairs the encoder files.
pub const SETUP_COMMAND: &str = "scripts/setup_encoder.sh";
/// Environment variable that sets ONNX Runtime's graph optimisation level (`disable`, `basic`,
/// `extended`, `all`; default `all`). Other levels run other kernels and so change the low bits
/// of embeddings, the way another CPU does: CI uses it to prove that the regression gate holds
/// on a machine other than the one that trained the committed artifact.
pub const OPTIMIZATION_ENV: &str = "SWITCHYARD_ORT_OPTIMIZATION";

/// The graph optimisation level from [`OPTIMIZATION_ENV`].
fn optimization_level() -> Result<ort::session::builder::GraphOptimizationLevel, String> {
    use ort::session::builder::GraphOptimizationLevel as L;
    match std::env::var(OPTIMIZATION_ENV).as_deref() {
        Err(_) | Ok("") | Ok("all") => Ok(L::Level3),
        Ok("extended") => Ok(L::Level2),
        Ok("basic") => Ok(L::Level1),
        Ok("disable") => Ok(L::Disable),
        Ok(other) => Err(format!(
            "{OPTIMIZATION_ENV}={other:?} is not one of disable, basic, extended, all"
        )),
    }
}

/// Where the setup script puts the static encoder (the default artifact's encoder).
pub const STATIC_DIR: &str = "models/encoder-potion";

/// The directory the setup scripts give an encoder id: the static one for potion, else MiniLM's.
pub fn dir_for(encoder_id: &str) -> &'static str {
    if encoder_id.starts_with("potion") {
        STATIC_DIR
    } else {
        DEFAULT_DIR
    }
}
/// The command that creates or repairs the static encoder files.
pub const STATIC_SETUP_COMMAND: &str = "scripts/setup_static_encoder.sh";

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

/// A loaded encoder.
pub struct Encoder {
    pub manifest: Manifest,
    tokenizer: tokenizers::Tokenizer,
    backend: Backend,
}

enum Backend {
    /// A small pool of ONNX sessions (`Session::run` needs `&mut`).
    Onnx {
        sessions: Vec<Mutex<ort::session::Session>>,
        next: AtomicUsize,
    },
    /// One row of `dimension` values per token id.
    Static { rows: Vec<f32> },
}

fn missing(path: &Path, setup: &str) -> String {
    format!(
        "encoder file {} is missing; run `{setup}` to create it",
        path.display()
    )
}

/// The `embeddings` tensor (f32, tokens × `dimension`) of a safetensors file.
fn static_rows(bytes: &[u8], dimension: usize) -> Result<Vec<f32>, String> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
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
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

/// The process-wide ONNX Runtime environment (the library can be loaded once per process).
fn environment(lib: &Path) -> Result<&'static ort::environment::Environment, String> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        ort::init_from(lib)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", lib.display()))?
            .with_name("switchyard")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

impl Encoder {
    /// Loads the encoder from `dir`, checking every file; an ONNX encoder gets `sessions`
    /// sessions of `threads` intra-op threads each. Errors name the file and the command that
    /// fixes it.
    pub fn load(dir: &Path, sessions: usize, threads: usize) -> Result<Encoder, String> {
        let setup = if dir.join("model.safetensors").exists() {
            STATIC_SETUP_COMMAND
        } else {
            SETUP_COMMAND
        };
        let file = |name: &str| -> Result<PathBuf, String> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(missing(&p, setup))
            }
        };
        let manifest_path = file("manifest.json")?;
        let manifest: Manifest = serde_json::from_str(
            &std::fs::read_to_string(&manifest_path)
                .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?,
        )
        .map_err(|e| {
            format!(
                "{} is not a valid encoder manifest ({e}); run `{setup}`",
                manifest_path.display()
            )
        })?;
        let model_name = match manifest.kind.as_str() {
            "onnx" => "model.onnx",
            "static" => "model.safetensors",
            other => {
                return Err(format!(
                    "{}: unknown encoder kind {other:?} (expected \"onnx\" or \"static\")",
                    manifest_path.display()
                ))
            }
        };
        let model_path = file(model_name)?;
        let tokenizer_path = file("tokenizer.json")?;
        let model = std::fs::read(&model_path)
            .map_err(|e| format!("cannot read {}: {e}", model_path.display()))?;
        let digest = format!("{:x}", Sha256::digest(&model));
        if digest != manifest.model_sha256 {
            return Err(format!(
                "{} is corrupt or from another export (sha256 {digest}, manifest says {}); delete it and run `{setup}`",
                model_path.display(),
                manifest.model_sha256
            ));
        }
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            format!(
                "cannot load {}: {e}; run `{setup}`",
                tokenizer_path.display()
            )
        })?;
        let backend = if manifest.kind == "static" {
            let rows = static_rows(&model, manifest.dimension)
                .map_err(|e| format!("{}: {e}; run `{setup}`", model_path.display()))?;
            Backend::Static { rows }
        } else {
            let lib_path = file(ORT_LIBRARY)?;
            let env = environment(&lib_path)?;
            let level = optimization_level()?;
            let mut pool = Vec::new();
            for _ in 0..sessions.max(1) {
                let session = ort::session::Session::builder(env)
                    .map_err(|e| e.to_string())?
                    .with_optimization_level(level)
                    .map_err(|e| e.to_string())?
                    .with_intra_threads(threads.max(1))
                    .map_err(|e| e.to_string())?
                    .with_inter_threads(1)
                    .map_err(|e| e.to_string())?
                    .commit_from_memory(&model)
                    .map_err(|e| format!("ONNX Runtime rejected {}: {e}", model_path.display()))?;
                pool.push(Mutex::new(session));
            }
            Backend::Onnx {
                sessions: pool,
                next: AtomicUsize::new(0),
            }
        };
        Ok(Encoder {
            manifest,
            tokenizer,
            backend,
        })
    }

    pub fn id(&self) -> &str {
        &self.manifest.encoder_id
    }

    pub fn dimension(&self) -> usize {
        self.manifest.dimension
    }

    /// Token count of a text as the encoder sees it (after truncation).
    pub fn token_count(&self, text: &str) -> usize {
        match self.backend {
            Backend::Onnx { .. } => self
                .tokenizer
                .encode(text, true)
                .map(|e| e.get_ids().len())
                .unwrap_or(0),
            Backend::Static { .. } => self.static_ids(text).map(|i| i.len()).unwrap_or(0),
        }
    }

    /// Token ids of a static encoder: no special tokens, at most `max_tokens`.
    fn static_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| format!("tokenization failed: {e}"))?;
        let ids = encoding.get_ids();
        Ok(ids[..ids.len().min(self.manifest.max_tokens)].to_vec())
    }

    /// Embeds texts; each result has unit length. Every text runs alone: dynamic int8
    /// quantization scales activations per batch, so batching would make a prompt's embedding
    /// depend on its neighbours (cosine down to ~0.97). Alone, serving, training and evals get
    /// bit-identical embeddings for the same text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        texts.iter().map(|t| self.embed_one(t)).collect()
    }

    /// Embeds one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, String> {
        match &self.backend {
            Backend::Static { rows } => self.embed_static(rows, text),
            Backend::Onnx { sessions, next } => self.embed_onnx(sessions, next, text),
        }
    }

    /// Mean of the token rows, L2-normalised (all zeros for a text without tokens).
    fn embed_static(&self, rows: &[f32], text: &str) -> Result<Vec<f32>, String> {
        let dim = self.manifest.dimension;
        let mut v = vec![0f32; dim];
        let ids = self.static_ids(text)?;
        for &id in &ids {
            let row = rows
                .get(id as usize * dim..(id as usize + 1) * dim)
                .ok_or_else(|| format!("token id {id} is outside the embedding matrix"))?;
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

    fn embed_onnx(
        &self,
        sessions: &[Mutex<ort::session::Session>],
        next: &AtomicUsize,
        text: &str,
    ) -> Result<Vec<f32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| format!("tokenization failed: {e}"))?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i64::from(i)).collect();
        let mask: Vec<i64> = encoding
            .get_attention_mask()
            .iter()
            .map(|&m| i64::from(m))
            .collect();
        let shape = [1i64, ids.len() as i64];
        let ids = ort::value::Tensor::from_array((shape, ids)).map_err(|e| e.to_string())?;
        let mask = ort::value::Tensor::from_array((shape, mask)).map_err(|e| e.to_string())?;
        let start = next.fetch_add(1, Ordering::Relaxed);
        let n = sessions.len();
        let slot = (0..n)
            .map(|i| &sessions[(start + i) % n])
            .find_map(|s| s.try_lock().ok());
        let mut session = match slot {
            Some(s) => s,
            None => sessions[start % n]
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        };
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
            .map_err(|e| format!("encoder inference failed: {e}"))?;
        let (_, data) = outputs["embedding"]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("encoder output is not a float tensor: {e}"))?;
        if data.len() != self.manifest.dimension {
            return Err(format!(
                "encoder output has {} values, expected {}",
                data.len(),
                self.manifest.dimension
            ));
        }
        Ok(data.to_vec())
    }
}

/// Characters of the last user message kept from its head and from its tail.
const HEAD_CHARS: usize = 600;
const TAIL_CHARS: usize = 400;

/// The text embedded for a conversation (OpenAI `messages`), by a fixed rule:
/// the last user message — its first 600 and last 400 characters when longer than 1,000 —
/// followed, when present, by the first 200 characters of the system prompt. The tokenizer then
/// truncates to the manifest's `max_tokens`.
pub fn prompt_text(messages: &[Value]) -> String {
    let text_of = |m: &Value| crate::request::content_text(&m["content"]);
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text_of)
        .unwrap_or_default();
    let chars: Vec<char> = last_user.chars().collect();
    let mut out = if chars.len() > HEAD_CHARS + TAIL_CHARS {
        let head: String = chars[..HEAD_CHARS].iter().collect();
        let tail: String = chars[chars.len() - TAIL_CHARS..].iter().collect();
        format!("{head} … {tail}")
    } else {
        last_user
    };
    if let Some(system) = messages
        .iter()
        .find(|m| m["role"] == "system" || m["role"] == "developer")
    {
        let s: String = text_of(system).chars().take(200).collect();
        if !s.is_empty() {
            out.push_str("\n\n");
            out.push_str(&s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_text_rule() {
        let long = "a".repeat(700) + &"b".repeat(700);
        let msgs = vec![
            json!({"role": "system", "content": "Be terse."}),
            json!({"role": "user", "content": "first"}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": long}),
        ];
        let t = prompt_text(&msgs);
        assert!(t.starts_with(&"a".repeat(600)));
        assert!(t.contains(" … "));
        assert!(t.ends_with("\n\nBe terse."));
        assert_eq!(t.chars().filter(|c| *c == 'b').count(), 400);
        assert_eq!(
            prompt_text(&[json!({"role": "user", "content": "hi"})]),
            "hi"
        );
    }

    #[test]
    fn missing_files_name_the_fix() {
        let err = Encoder::load(Path::new("/nonexistent/encoder"), 1, 1)
            .err()
            .unwrap();
        assert!(err.contains("manifest.json is missing"), "{err}");
        assert!(err.contains(SETUP_COMMAND));
    }
}
