//! The embedding cache: a Parquet table keyed by encoder id + text sha256, so a re-run embeds
//! only prompts it has not seen. Columns: `encoder_id`, `text_sha256`, `e0` … `e{dim-1}` (f32).

use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use switchyard_learn::embed::{Embed, Encoder};
use switchyard_learn::prompt::prompt_text;

/// The text the encoder sees for a single-turn prompt (the server's rule, one user message).
pub fn encoder_text(prompt: &str) -> String {
    prompt_text(&[serde_json::json!({"role": "user", "content": prompt})])
}

pub fn text_key(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// A text key and its embedding.
type Keyed = (String, Vec<f32>);

/// Embeddings by text key, loaded from and saved to the cache file.
pub struct Cache {
    pub encoder_id: String,
    pub dimension: usize,
    pub vectors: HashMap<String, Vec<f32>>,
    /// Rows of other encoders, kept as they are.
    others: Option<DataFrame>,
    pub hits: usize,
    pub computed: usize,
}

impl Cache {
    /// Loads the cache; rows of another encoder are kept but never used.
    pub fn load(path: &Path, encoder_id: &str, dimension: usize) -> Result<Cache, String> {
        let mut cache = Cache {
            encoder_id: encoder_id.to_string(),
            dimension,
            vectors: HashMap::new(),
            others: None,
            hits: 0,
            computed: 0,
        };
        if !path.exists() {
            return Ok(cache);
        }
        let df = LazyFrame::scan_parquet(
            PlRefPath::new(path.to_string_lossy().as_ref()),
            Default::default(),
        )
        .and_then(|lf| lf.collect())
        .map_err(|e| {
            format!(
                "{}: cannot read the embedding cache ({e}); delete it to rebuild",
                path.display()
            )
        })?;
        let ids = df
            .column("encoder_id")
            .and_then(|c| c.str().cloned())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mine = ids.equal(encoder_id);
        let theirs = df.filter(&!&mine).map_err(|e| e.to_string())?;
        let df = df.filter(&mine).map_err(|e| e.to_string())?;
        if theirs.height() > 0 {
            cache.others = Some(theirs);
        }
        let keys = df
            .column("text_sha256")
            .and_then(|c| c.str().cloned())
            .map_err(|e| e.to_string())?;
        let mut cols = Vec::with_capacity(dimension);
        for d in 0..dimension {
            let c = df
                .column(&format!("e{d}"))
                .and_then(|c| c.f32().cloned())
                .map_err(|_| format!("{}: encoder {encoder_id} rows lack column e{d}: the cache does not match the encoder's dimension {dimension}; delete it", path.display()))?;
            cols.push(c);
        }
        for i in 0..df.height() {
            let v: Vec<f32> = cols.iter().map(|c| c.get(i).unwrap_or(0.0)).collect();
            if let Some(k) = keys.get(i) {
                cache.vectors.insert(k.to_string(), v);
            }
        }
        Ok(cache)
    }

    /// Embeds every text not in the cache, on `threads` threads, with a progress line.
    pub fn fill(
        &mut self,
        encoder: &Encoder,
        texts: &[String],
        threads: usize,
    ) -> Result<(), String> {
        let mut todo: Vec<(&str, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in texts {
            let k = text_key(t);
            if self.vectors.contains_key(&k) {
                self.hits += 1;
            } else if seen.insert(k.clone()) {
                todo.push((t.as_str(), k));
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let total = todo.len();
        let chunk = total.div_ceil(threads.max(1));
        let results: Vec<Result<Vec<Keyed>, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(chunk)
                .map(|part| {
                    let done = &done;
                    s.spawn(move || {
                        let mut out = Vec::with_capacity(part.len());
                        for (text, key) in part {
                            out.push((
                                key.clone(),
                                encoder.embed(text).map_err(|e| e.to_string())?,
                            ));
                            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            if n.is_multiple_of(100) || n == total {
                                let rate = n as f64 / start.elapsed().as_secs_f64();
                                eprint!(
                                    "\rembedding {n}/{total} prompts ({rate:.0}/s, {:.0}s left)   ",
                                    (total - n) as f64 / rate
                                );
                                let _ = std::io::stderr().flush();
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("an embedding thread panicked".into()))
                })
                .collect()
        });
        eprintln!();
        for r in results {
            for (k, v) in r? {
                self.vectors.insert(k, v);
                self.computed += 1;
            }
        }
        Ok(())
    }

    /// Writes the cache (this encoder's rows sorted by key, then other encoders' rows).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut keys: Vec<&String> = self.vectors.keys().collect();
        keys.sort();
        let mut columns = vec![
            Column::new(
                "encoder_id".into(),
                vec![self.encoder_id.as_str(); keys.len()],
            ),
            Column::new(
                "text_sha256".into(),
                keys.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            ),
        ];
        for d in 0..self.dimension {
            columns.push(Column::new(
                format!("e{d}").into(),
                keys.iter()
                    .map(|k| self.vectors[*k][d])
                    .collect::<Vec<f32>>(),
            ));
        }
        let mut df = DataFrame::new_infer_height(columns).map_err(|e| e.to_string())?;
        if let Some(o) = &self.others {
            if o.get_column_names() == df.get_column_names() {
                df.vstack_mut(o).map_err(|e| e.to_string())?;
            }
        }
        crate::outcomes::write_parquet(&mut df, path)
    }

    pub fn get(&self, text: &str) -> Option<&Vec<f32>> {
        self.vectors.get(&text_key(text))
    }

    /// The embedding of a text the cache was filled with ([`Cache::fill`]) before.
    #[allow(
        clippy::expect_used,
        reason = "every caller fills the cache with all its texts first; a miss is a bug"
    )]
    pub fn embedded(&self, text: &str) -> &[f32] {
        self.get(text).expect("the cache was filled with this text")
    }
}

/// The embeddings of `texts` by the artifact's own encoder (the one at `encoder`, checked against
/// the artifact's manifest), from the cache file `path`, computing and saving what it lacks.
pub fn for_artifact(
    artifact: &switchyard_learn::artifact::Artifact,
    encoder: &Path,
    path: &Path,
    texts: &[String],
    threads: usize,
) -> Result<Cache, String> {
    use switchyard_learn::embed::Embed;
    let e = Encoder::load(encoder, threads.max(1), 1).map_err(|e| e.to_string())?;
    if artifact.manifest.encoder.id != e.id() {
        return Err(format!(
            "artifact {} was trained with encoder {}, but {} holds {}",
            artifact.version(),
            artifact.manifest.encoder.id,
            encoder.display(),
            e.id()
        ));
    }
    let mut cache = Cache::load(path, e.id(), e.dimension())?;
    cache.fill(&e, texts, threads)?;
    cache.save(path)?;
    Ok(cache)
}
