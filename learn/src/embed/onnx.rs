//! The ONNX encoder (all-MiniLM-L6-v2, int8), run by ONNX Runtime from the library shipped
//! beside the model. Every text runs alone: dynamic int8 quantization scales activations per
//! batch, so batching would make a prompt's embedding depend on its neighbours (cosine down to
//! ~0.97). Alone, serving, training and evals get bit-identical embeddings for the same text.

use super::Files;
use crate::LearnError;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The ONNX Runtime library file shipped beside the model.
pub const ORT_LIBRARY: &str = "libonnxruntime.so.1.31.1";
/// Environment variable that sets ONNX Runtime's graph optimisation level (`disable`, `basic`,
/// `extended`, `all`; default `all`). Other levels run other kernels and so change the low bits
/// of embeddings, the way another CPU does: CI uses it to prove that the regression gate holds
/// on a machine other than the one that trained the committed artifact.
pub const OPTIMIZATION_ENV: &str = "SWITCHYARD_ORT_OPTIMIZATION";

/// The graph optimisation level from [`OPTIMIZATION_ENV`].
fn optimization_level() -> Result<ort::session::builder::GraphOptimizationLevel, LearnError> {
    use ort::session::builder::GraphOptimizationLevel as L;
    match std::env::var(OPTIMIZATION_ENV).as_deref() {
        Err(_) | Ok("") | Ok("all") => Ok(L::Level3),
        Ok("extended") => Ok(L::Level2),
        Ok("basic") => Ok(L::Level1),
        Ok("disable") => Ok(L::Disable),
        Ok(other) => Err(LearnError::Setting(format!(
            "{OPTIMIZATION_ENV}={other:?} is not one of disable, basic, extended, all"
        ))),
    }
}

/// The process-wide ONNX Runtime environment (the library can be loaded once per process).
fn environment(lib: &Path) -> Result<&'static ort::environment::Environment, LearnError> {
    static ENV: OnceLock<Result<ort::environment::Environment, LearnError>> = OnceLock::new();
    ENV.get_or_init(|| {
        let runtime = |e: String| LearnError::BadFile(e);
        ort::init_from(lib)
            .map_err(|e| {
                runtime(format!(
                    "cannot load ONNX Runtime from {}: {e}",
                    lib.display()
                ))
            })?
            .with_name("switchyard")
            .build()
            .map_err(|e| runtime(format!("cannot start ONNX Runtime: {e}")))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A small pool of ONNX sessions (`Session::run` needs `&mut`).
pub(crate) struct Onnx {
    tokenizer: tokenizers::Tokenizer,
    sessions: Vec<Mutex<ort::session::Session>>,
    next: AtomicUsize,
}

impl Onnx {
    pub fn new(files: Files, sessions: usize, threads: usize) -> Result<Onnx, LearnError> {
        let env = environment(&files.require(ORT_LIBRARY)?)?;
        let level = optimization_level()?;
        let rejected = |e: String| {
            LearnError::BadFile(format!(
                "ONNX Runtime rejected {}: {e}",
                files.model_path.display()
            ))
        };
        let mut pool = Vec::new();
        for _ in 0..sessions.max(1) {
            let session = ort::session::Session::builder(env)
                .map_err(|e| rejected(e.to_string()))?
                .with_optimization_level(level)
                .map_err(|e| rejected(e.to_string()))?
                .with_intra_threads(threads.max(1))
                .map_err(|e| rejected(e.to_string()))?
                .with_inter_threads(1)
                .map_err(|e| rejected(e.to_string()))?
                .commit_from_memory(&files.model)
                .map_err(|e| rejected(e.to_string()))?;
            pool.push(Mutex::new(session));
        }
        Ok(Onnx {
            tokenizer: files.tokenizer,
            sessions: pool,
            next: AtomicUsize::new(0),
        })
    }

    pub fn token_count(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().len())
            .unwrap_or(0)
    }

    pub fn embed(&self, text: &str, dimension: usize) -> Result<Vec<f32>, LearnError> {
        let fail = LearnError::Encode;
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| fail(format!("tokenization failed: {e}")))?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i64::from(i)).collect();
        let mask: Vec<i64> = encoding
            .get_attention_mask()
            .iter()
            .map(|&m| i64::from(m))
            .collect();
        let shape = [1i64, ids.len() as i64];
        let ids = ort::value::Tensor::from_array((shape, ids)).map_err(|e| fail(e.to_string()))?;
        let mask =
            ort::value::Tensor::from_array((shape, mask)).map_err(|e| fail(e.to_string()))?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        let slot = (0..n)
            .map(|i| &self.sessions[(start + i) % n])
            .find_map(|s| s.try_lock().ok());
        let mut session = match slot {
            Some(s) => s,
            None => self.sessions[start % n]
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        };
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
            .map_err(|e| fail(format!("encoder inference failed: {e}")))?;
        let (_, data) = outputs["embedding"]
            .try_extract_tensor::<f32>()
            .map_err(|e| fail(format!("encoder output is not a float tensor: {e}")))?;
        if data.len() != dimension {
            return Err(fail(format!(
                "encoder output has {} values, expected {dimension}",
                data.len()
            )));
        }
        Ok(data.to_vec())
    }
}
