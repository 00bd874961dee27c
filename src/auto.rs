//! Learned routing (`model: "auto"`): embed the prompt, predict each candidate's quality and
//! cost with the trained artifact, drop candidates that fail a CEL guardrail, and rank the rest
//! by `score = predicted_quality − cost_weight × predicted_cost / reference_cost`.
//! The ranked eligible candidates form the fallback chain.
//!
//! The cost unit ([`reference_cost`]) is what the priciest candidate charges for the artifact's
//! typical prompt (median training prompt length), fixed for a candidate set. So a long prompt
//! costs more units than a short one and needs a larger predicted quality gain to justify the
//! expensive model, while `cost_weight` keeps one meaning: the quality a typical prompt's
//! strong-model cost must buy.

use crate::config::{AutoConfig, ModelConfig};
use crate::encoder::{prompt_text, Encoder};
use crate::error::{ErrorKind, GatewayError};
use crate::predictor::{Artifact, Prediction};
use crate::request::ChatRequest;
use crate::routing::cel::CelExpr;
use crate::routing::{request_facts, sticky::stable_hash};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

/// One guardrail's verdict for one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub expression: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One candidate as scored for a request.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub model: String,
    pub artifact_model: String,
    pub predicted_quality: f64,
    pub predicted_output_tokens: f64,
    pub predicted_cost_usd: f64,
    /// `predicted_cost_usd / reference_cost`: the cost term of the score before the weight.
    pub relative_cost: f64,
    pub guardrails: Vec<Verdict>,
    pub score: f64,
    pub eligible: bool,
}

/// The learned part of a routing decision (`metadata.routing`).
#[derive(Debug, Clone, Serialize)]
pub struct LearnedDecision {
    pub candidates: Vec<Scored>,
    pub chosen: String,
    pub knob: String,
    pub cost_weight: f64,
    pub artifact_version: String,
    pub encoder_id: String,
    pub embedding_cache_hit: bool,
    /// Time in the decision itself (embedding, prediction, guardrails, ranking).
    pub decision_ms: f64,
    /// Time waiting for a decision slot on the bounded blocking pool.
    pub queue_ms: f64,
}

/// A bounded least-recently-used cache of prompt embeddings.
struct EmbeddingCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<u64, (Arc<Vec<f32>>, u64)>,
}

impl EmbeddingCache {
    fn get(&mut self, key: u64) -> Option<Arc<Vec<f32>>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(&key).map(|(v, used)| {
            *used = tick;
            v.clone()
        })
    }

    fn insert(&mut self, key: u64, v: Arc<Vec<f32>>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.tick += 1;
        self.entries.insert(key, (v, self.tick));
    }
}

/// A loaded learned router.
pub struct AutoRouter {
    pub artifact: Artifact,
    pub encoder: Encoder,
    pub artifact_dir: PathBuf,
    candidates: Vec<(String, Arc<ModelConfig>)>,
    guardrails: Vec<Arc<CelExpr>>,
    pub default_cost_weight: f64,
    /// The artifact's strong-share calibration, read once at load.
    pub calibration: Option<Vec<f64>>,
    cache: Mutex<EmbeddingCache>,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

/// The artifact directory: `dir` itself, or the one named by `dir/LATEST`.
pub fn artifact_dir(dir: &Path) -> Result<PathBuf, String> {
    if dir.join("weights.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let latest = dir.join("LATEST");
    match std::fs::read_to_string(&latest) {
        Ok(name) => Ok(dir.join(name.trim())),
        Err(_) => Err(format!(
            "no trained router artifact in {} (no weights.json and no LATEST); create one with `switchyard train` \
             (after `cargo build --release -p switchyard-training`)",
            dir.display()
        )),
    }
}

impl AutoRouter {
    /// Loads the encoder and artifact and checks that they belong together.
    pub fn load(cfg: &AutoConfig) -> Result<AutoRouter, String> {
        let dir = artifact_dir(&cfg.artifact)?;
        let artifact = Artifact::load(&dir)?;
        let encoder = Encoder::load(&cfg.encoder, cfg.encoder_sessions, 1)?;
        let want = &artifact.manifest["encoder"];
        if want["id"].as_str() != Some(encoder.id())
            || want["dimension"].as_u64() != Some(encoder.dimension() as u64)
        {
            return Err(format!(
                "artifact {} was trained with encoder {} (dimension {}), but {} holds {} (dimension {}); retrain with `switchyard train` or point [auto] at the matching encoder",
                dir.display(),
                want["id"],
                want["dimension"],
                cfg.encoder.display(),
                encoder.id(),
                encoder.dimension()
            ));
        }
        for (name, _) in &cfg.candidates {
            if !artifact.weights.candidates.iter().any(|c| &c.model == name) {
                return Err(format!(
                    "[auto] candidates names {name:?}, which artifact {} does not predict (it has: {})",
                    dir.display(),
                    artifact.weights.candidates.iter().map(|c| c.model.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let calibration = artifact.calibration();
        Ok(AutoRouter {
            artifact,
            encoder,
            artifact_dir: dir,
            candidates: cfg.candidates.clone(),
            guardrails: cfg.guardrails.clone(),
            default_cost_weight: cfg.default_cost_weight,
            calibration,
            cache: Mutex::new(EmbeddingCache {
                capacity: cfg.cache_size,
                tick: 0,
                entries: HashMap::new(),
            }),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        })
    }

    /// The embedding of a prompt text, from the cache when possible. Blocking (runs the encoder).
    pub fn embedding(&self, text: &str) -> Result<(Arc<Vec<f32>>, bool), String> {
        let key = stable_hash(text);
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((v, true));
        }
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let v = Arc::new(self.encoder.embed_one(text)?);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, v.clone());
        Ok((v, false))
    }

    /// Decides for a request. Blocking: call it on a blocking thread.
    /// `only` restricts the candidates to these served model ids (a router route's subset);
    /// empty = all.
    pub fn decide(
        &self,
        req: &ChatRequest,
        knob: &str,
        cost_weight: f64,
        only: &[String],
    ) -> Result<(Vec<Arc<ModelConfig>>, LearnedDecision), GatewayError> {
        let started = Instant::now();
        let text = prompt_text(req.messages());
        let (embedding, hit) = self.embedding(&text).map_err(|e| {
            GatewayError::new(
                ErrorKind::Internal,
                format!("learned routing could not embed the prompt: {e}"),
            )
        })?;
        let mut decided = self.decide_embedded(req, &embedding, knob, cost_weight, only)?;
        decided.1.embedding_cache_hit = hit;
        decided.1.decision_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        Ok(decided)
    }

    /// The decision from a prompt embedding: predict, guardrails, rank (everything but the
    /// encoder). Its `decision_ms` covers only this part.
    pub fn decide_embedded(
        &self,
        req: &ChatRequest,
        embedding: &[f32],
        knob: &str,
        cost_weight: f64,
        only: &[String],
    ) -> Result<(Vec<Arc<ModelConfig>>, LearnedDecision), GatewayError> {
        let started = Instant::now();
        let subset: Vec<(String, Arc<ModelConfig>)>;
        let pool = if only.is_empty() {
            &self.candidates
        } else {
            subset = self
                .candidates
                .iter()
                .filter(|(_, m)| only.contains(&m.id))
                .cloned()
                .collect();
            &subset
        };
        let mut candidates = rank(
            &self.artifact,
            pool,
            &self.guardrails,
            req,
            embedding,
            cost_weight,
        );
        order(&mut candidates);
        let chain: Vec<Arc<ModelConfig>> = candidates
            .iter()
            .filter(|c| c.eligible)
            .filter_map(|c| {
                self.candidates
                    .iter()
                    .find(|(_, m)| m.id == c.model)
                    .map(|(_, m)| m.clone())
            })
            .collect();
        if chain.is_empty() {
            let why: Vec<String> = candidates
                .iter()
                .map(|c| {
                    let failed: Vec<&str> = c
                        .guardrails
                        .iter()
                        .filter(|v| !v.passed)
                        .map(|v| v.expression.as_str())
                        .collect();
                    format!("{} failed {}", c.model, failed.join(" and "))
                })
                .collect();
            return Err(GatewayError::invalid(
                format!(
                    "no candidate model passes the guardrails: {}",
                    why.join("; ")
                ),
                "model",
            )
            .with_details(json!({"candidates": candidates})));
        }
        let decision = LearnedDecision {
            chosen: chain[0].id.clone(),
            candidates,
            knob: knob.to_string(),
            cost_weight,
            artifact_version: self.artifact.version().to_string(),
            encoder_id: self.encoder.id().to_string(),
            embedding_cache_hit: false,
            decision_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            queue_ms: 0.0,
        };
        Ok((chain, decision))
    }
}

/// What identifies the artifact on disk: the resolved directory and its files' modification times.
type Signature = (PathBuf, Option<SystemTime>, Option<SystemTime>);

fn signature(cfg: &AutoConfig) -> Option<Signature> {
    let dir = artifact_dir(&cfg.artifact).ok()?;
    let mtime = |name: &str| {
        std::fs::metadata(dir.join(name))
            .and_then(|m| m.modified())
            .ok()
    };
    Some((dir.clone(), mtime("weights.json"), mtime("manifest.json")))
}

/// The live learned router. A reload swaps it atomically: requests keep the `Arc` they started
/// with, and a broken artifact is refused while the old router stays.
pub struct AutoSlot {
    current: RwLock<Result<Arc<AutoRouter>, String>>,
    seen: Mutex<Option<Signature>>,
}

impl AutoSlot {
    /// Loads the configured router, or records why `auto` is unavailable.
    pub fn load(cfg: Option<&AutoConfig>) -> AutoSlot {
        let (current, seen) = match cfg {
            None => (
                Err(
                    "learned routing is not configured (no [auto] section in the config)"
                        .to_string(),
                ),
                None,
            ),
            Some(c) => (AutoRouter::load(c).map(Arc::new), signature(c)),
        };
        AutoSlot {
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        }
    }

    /// The router requests should use now, or why there is none.
    pub fn get(&self) -> Result<Arc<AutoRouter>, String> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the artifact on disk changed since the last load or check.
    pub fn changed(&self, cfg: &AutoConfig) -> bool {
        let now = signature(cfg);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *seen != now;
        *seen = now;
        changed
    }

    /// Loads the artifact again (blocking). On success the new router replaces the old one and
    /// its version is returned; on failure the old router stays and the reason is returned.
    pub fn reload(&self, cfg: &AutoConfig) -> Result<String, String> {
        let loaded = AutoRouter::load(cfg).map(Arc::new);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(router) => {
                let version = router.artifact.version().to_string();
                *current = Ok(router);
                Ok(version)
            }
            Err(e) => {
                if current.is_err() {
                    *current = Err(e.clone());
                }
                Err(e)
            }
        }
    }
}

/// Scores every candidate for one prompt with the artifact's predictions (shared by the server
/// and offline evaluation).
pub fn rank(
    artifact: &Artifact,
    candidates: &[(String, Arc<ModelConfig>)],
    guardrails: &[Arc<CelExpr>],
    req: &ChatRequest,
    embedding: &[f32],
    cost_weight: f64,
) -> Vec<Scored> {
    let predictions = artifact.predict(embedding, req.prompt_tokens);
    let reference = reference_cost(artifact, candidates);
    rank_predictions(
        &predictions,
        candidates,
        guardrails,
        req,
        cost_weight,
        reference,
    )
}

/// The objective's cost unit: the largest cost, at the served models' prices, of the artifact's
/// typical prompt (its `cost_reference.prompt_tokens`) with each candidate's predicted output.
pub fn reference_cost(artifact: &Artifact, candidates: &[(String, Arc<ModelConfig>)]) -> f64 {
    let tokens = artifact.reference_prompt_tokens();
    candidates
        .iter()
        .filter_map(|(name, model)| {
            let c = artifact
                .weights
                .candidates
                .iter()
                .find(|c| &c.model == name)?;
            Some(
                (tokens as f64 * model.input_price_per_mtok
                    + c.output_tokens.predict(tokens) * model.output_price_per_mtok)
                    / 1e6,
            )
        })
        .fold(0.0, f64::max)
        .max(1e-12)
}

/// Scores candidates from any predictor's per-model quality and output tokens (the learned
/// artifact, or an evaluation baseline such as kNN): guardrail verdicts, cost from the served
/// model's prices, and `score = quality − cost_weight × cost / reference`.
pub fn rank_predictions(
    predictions: &[Prediction],
    candidates: &[(String, Arc<ModelConfig>)],
    guardrails: &[Arc<CelExpr>],
    req: &ChatRequest,
    cost_weight: f64,
    reference: f64,
) -> Vec<Scored> {
    let facts = request_facts(req);
    let metadata = Value::Object(req.metadata.clone());
    let mut scored: Vec<Scored> = candidates
        .iter()
        .filter_map(|(name, model)| {
            let p = predictions.iter().find(|p| &p.model == name)?;
            // The served model's prices decide cost; the predictor gives tokens and quality.
            let cost = (req.prompt_tokens as f64 * model.input_price_per_mtok + p.output_tokens * model.output_price_per_mtok) / 1e6;
            let model_json = json!({
                "id": model.id, "provider": model.provider, "input_price_per_mtok": model.input_price_per_mtok,
                "output_price_per_mtok": model.output_price_per_mtok, "context_window": model.context_window,
                "max_output_tokens": model.max_output_tokens, "tags": model.tags,
            });
            let mut vars: Vec<(&str, &Value)> = req
                .metadata
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "model" | "request" | "metadata"))
                .map(|(k, v)| (k.as_str(), v))
                .collect();
            vars.push(("model", &model_json));
            vars.push(("request", &facts));
            vars.push(("metadata", &metadata));
            let guardrails: Vec<Verdict> = guardrails
                .iter()
                .map(|g| match g.eval_bool(&vars) {
                    Ok(passed) => Verdict { expression: g.source.clone(), passed, error: None },
                    Err(e) => Verdict { expression: g.source.clone(), passed: false, error: Some(e) },
                })
                .collect();
            let eligible = guardrails.iter().all(|v| v.passed);
            Some(Scored {
                model: model.id.clone(),
                artifact_model: name.clone(),
                predicted_quality: round6(p.quality),
                predicted_output_tokens: round6(p.output_tokens),
                predicted_cost_usd: cost,
                relative_cost: round6(cost / reference),
                guardrails,
                score: 0.0,
                eligible,
            })
        })
        .collect();
    for c in &mut scored {
        c.score = round6(c.predicted_quality - cost_weight * c.relative_cost);
    }
    scored
}

/// Orders scored candidates as the fallback chain: eligible first, then by score (stable, so
/// the first listed wins a tie). The first one, if eligible, is the choice.
pub fn order(scored: &mut [Scored]) {
    scored.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.score.total_cmp(&a.score))
    });
}

/// The artifact's candidates as models priced as in training, for offline scoring (calibration
/// and evals) without a server config.
pub fn artifact_candidates(artifact: &Artifact) -> Vec<(String, Arc<ModelConfig>)> {
    artifact
        .weights
        .candidates
        .iter()
        .map(|c| {
            let model = ModelConfig {
                id: c.model.clone(),
                provider: "artifact".into(),
                upstream: c.model.clone(),
                input_price_per_mtok: c.input_price_per_mtok,
                output_price_per_mtok: c.output_price_per_mtok,
                context_window: u64::MAX,
                max_output_tokens: u64::MAX,
                tags: vec![],
                mock: Default::default(),
            };
            (c.model.clone(), Arc::new(model))
        })
        .collect()
}

/// The chat request the server sees for a single-turn prompt (offline scoring uses it so
/// prompt-token estimates and encoder text match serving).
pub fn single_turn_request(prompt: &str) -> ChatRequest {
    ChatRequest::from_openai(
        json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}),
    )
    .expect("a single user message is a valid request")
}

/// Bound on break-even cost weights, so calibration tables stay finite.
const BREAKEVEN_LIMIT: f64 = 10.0;

/// The largest cost weight at which candidate `strong` still wins this prompt under the
/// [`rank_predictions`] objective (clamped to ±10). The strong-share knob is calibrated on these.
pub fn breakeven(scored: &[Scored], strong: &str) -> f64 {
    let Some(s) = scored.iter().find(|c| c.artifact_model == strong) else {
        return -BREAKEVEN_LIMIT;
    };
    let mut bound = BREAKEVEN_LIMIT;
    for c in scored.iter().filter(|c| c.artifact_model != strong) {
        let dq = s.predicted_quality - c.predicted_quality;
        let dc = s.relative_cost - c.relative_cost;
        let b = if dc > 0.0 {
            dq / dc
        } else if dq >= 0.0 {
            BREAKEVEN_LIMIT
        } else {
            -BREAKEVEN_LIMIT
        };
        bound = bound.min(b);
    }
    bound.clamp(-BREAKEVEN_LIMIT, BREAKEVEN_LIMIT)
}

/// The strong-share calibration stored in an artifact's manifest: break-even cost weights of
/// validation prompts at quantile levels 0, 1, …, 100 %.
pub fn calibration_table(mut breakevens: Vec<f64>) -> Vec<f64> {
    breakevens.sort_by(f64::total_cmp);
    (0..=100)
        .map(|i| quantile(&breakevens, i as f64 / 100.0))
        .collect()
}

/// Linear-interpolated quantile of sorted values.
pub fn quantile(sorted: &[f64], level: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = level.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The cost weight that sends about `share` of prompts (0–1) to the strong candidate, read
/// from a calibration table: the (1 − share) quantile of the break-even weights.
pub fn cost_weight_for_share(table: &[f64], share: f64) -> f64 {
    quantile(table, 1.0 - share)
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
