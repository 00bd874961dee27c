//! The learned step of routing (`model: "auto"`): embed the prompt, score every candidate with
//! the trained artifact ([`switchyard_learn::score`]), drop candidates that fail a CEL guardrail,
//! and order the rest; the ranked eligible candidates form the fallback chain, which
//! [`explore`] may reorder (with the served model's propensity recorded). The loaded router
//! lives in a hot-reloadable [`slot::AutoSlot`]; embeddings are cached ([`cache`]).

pub mod cache;
pub mod explore;
pub mod slot;

pub use slot::AutoSlot;

use super::facts::{model_facts, reads_live, Vars};
use crate::cel::CelExpr;
use crate::clock::millis_since;
use crate::config::{AutoConfig, ModelConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::ChatRequest;
use crate::live::{Estimate, LiveStats};
use cache::EmbeddingCache;
use explore::{Explorer, Prospect};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchyard_learn::artifact::{artifact_dir, Artifact};
use switchyard_learn::embed::{Embed, Encoder};
use switchyard_learn::hash::stable_hash;
use switchyard_learn::prompt::prompt_text;
use switchyard_learn::schema::{LearnedDecision, NonText};
use switchyard_learn::score::{
    on_profile, order, rank, Basis, Priced, Scored, Unfamiliar, Verdict,
};
use switchyard_learn::LearnError;

/// The longest prompt (estimated tokens) decided on the request's own thread with a static
/// encoder: its tokenizer reads at most its budget of tokens, but a word outside printable ASCII
/// goes through the full tokenizer whole, so a long prompt goes to a blocking thread.
pub const INLINE_PROMPT_TOKENS: u64 = 2048;

/// A loaded learned router.
pub struct AutoRouter {
    pub artifact: Artifact,
    pub encoder: Box<dyn Embed>,
    pub artifact_dir: PathBuf,
    /// The candidates as scoring sees them, in `[auto] candidates` order.
    priced: Vec<Priced>,
    /// The served model of each candidate, in the same order.
    models: Vec<Arc<ModelConfig>>,
    guardrails: Vec<Arc<CelExpr>>,
    pub default_cost_weight: f64,
    /// Support below which a prompt is unfamiliar, and what is done then.
    pub min_support: f64,
    /// `[auto] min_support` as configured (it overrides the profile's threshold too).
    min_support_set: Option<f64>,
    pub policy: Unfamiliar,
    pub familiar: AtomicU64,
    pub unfamiliar: AtomicU64,
    /// The artifact's strong-share calibration, read once at load.
    pub calibration: Option<Vec<f64>>,
    pub explorer: Explorer,
    /// Where each candidate's prior comes from, and the savings baseline ([`AutoConfig`]).
    prior_sources: BTreeMap<String, String>,
    baseline: Option<String>,
    /// Live latency and error estimates (guardrails read them; `latency_weight` scores TTFT).
    live: Arc<LiveStats>,
    /// Whether a guardrail reads a live fact: the estimates are computed per decision only then.
    guardrails_read_live: bool,
    latency_weight: f64,
    cache: Mutex<EmbeddingCache>,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

impl AutoRouter {
    /// Loads the encoder and artifact named by `[auto]` and checks that they belong together.
    pub fn load(cfg: &AutoConfig) -> Result<AutoRouter, LearnError> {
        let encoder = Encoder::load(&cfg.encoder, cfg.encoder_sessions, 1)?;
        AutoRouter::with_encoder(cfg, Box::new(encoder))
    }

    /// Loads the artifact named by `[auto]` and pairs it with `encoder` (tests pass a fake).
    pub fn with_encoder(
        cfg: &AutoConfig,
        encoder: Box<dyn Embed>,
    ) -> Result<AutoRouter, LearnError> {
        let dir = artifact_dir(&cfg.artifact)?;
        let artifact = Artifact::load(&dir)?;
        let want = &artifact.manifest.encoder;
        if want.id != encoder.id() || want.dimension != encoder.dimension() {
            return Err(LearnError::Mismatch(format!(
                "artifact {} was trained with encoder {} (dimension {}), but {} holds {} (dimension {}); retrain with `switchyard train` or point [auto] at the matching encoder",
                dir.display(),
                want.id,
                want.dimension,
                cfg.encoder.display(),
                encoder.id(),
                encoder.dimension()
            )));
        }
        // Candidates the artifact has outcomes of are predicted from them; the others (new
        // models) from their prior and the artifact's profile. Artifact candidates this config
        // does not list are not scored.
        let priced = cfg
            .candidates
            .iter()
            .map(|m| Priced {
                model: m.id.clone(),
                price: m.price(),
                prior: cfg.priors.get(&m.id).copied(),
            })
            .collect();
        let models = cfg.candidates.clone();
        let min_support = cfg
            .min_support
            .or(artifact.support_threshold())
            .unwrap_or(f64::NEG_INFINITY);
        let calibration = artifact.calibration();
        Ok(AutoRouter {
            artifact,
            encoder,
            artifact_dir: dir,
            priced,
            models,
            guardrails: cfg.guardrails.clone(),
            default_cost_weight: cfg.default_cost_weight,
            min_support,
            min_support_set: cfg.min_support,
            policy: cfg.unfamiliar,
            familiar: AtomicU64::new(0),
            unfamiliar: AtomicU64::new(0),
            calibration,
            explorer: Explorer::new(cfg.explore),
            prior_sources: cfg.prior_sources.clone(),
            baseline: cfg.baseline.clone(),
            live: Arc::default(),
            guardrails_read_live: cfg.guardrails.iter().any(|g| reads_live(&g.source)),
            latency_weight: cfg.latency_weight,
            cache: Mutex::new(EmbeddingCache::new(cfg.cache_size)),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        })
    }

    /// The router reading `live` estimates (the server's; a loaded router starts with none).
    pub fn with_live(mut self, live: Arc<LiveStats>) -> AutoRouter {
        self.live = live;
        self
    }

    /// The embedding cache's bytes now and at most (`/metrics`).
    pub fn cache_memory(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.memory(self.encoder.dimension())
    }

    /// The embedding of a prompt text, from the cache when possible. Blocking (runs the encoder).
    pub fn embedding(&self, text: &str) -> Result<(Arc<Vec<f32>>, bool), LearnError> {
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
        let v = Arc::new(self.encoder.embed(text)?);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, v.clone());
        Ok((v, false))
    }

    /// Whether deciding for `req` takes so little time (a static encoder, a prompt of at most
    /// [`INLINE_PROMPT_TOKENS`]) that it runs on the request's own thread: handing it to a
    /// blocking thread and back costs more than the decision.
    pub fn decides_inline(&self, req: &ChatRequest) -> bool {
        self.encoder.is_cheap() && req.prompt_tokens <= INLINE_PROMPT_TOKENS
    }

    /// Decides for a request. Blocking: call it on a blocking thread unless
    /// [`AutoRouter::decides_inline`].
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
        decided.1.decision_ms = millis_since(started);
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
        let subset: Vec<Priced>;
        let pool = if only.is_empty() {
            &self.priced
        } else {
            subset = self
                .priced
                .iter()
                .filter(|p| only.contains(&p.model))
                .cloned()
                .collect();
            &subset
        };
        let metadata = self.artifact.metadata_features(&req.metadata);
        let ranked = rank(
            &self.artifact,
            pool,
            (req.prompt_tokens, embedding, &metadata),
            cost_weight,
        );
        let mut candidates = ranked.candidates;
        // The support of whatever predicts: the artifact's memory when a candidate has outcome
        // data in it, else the profile's judged prompts (with its own threshold unless
        // `min_support` is set).
        let judged = on_profile(&self.artifact, pool)
            .and_then(|p| Some((p.support(embedding)?, p.support_threshold)));
        let (support, threshold) = match judged {
            Some((s, t)) => (s, self.min_support_set.unwrap_or(t)),
            None => (ranked.support, self.min_support),
        };
        let unfamiliar = support.similarity < threshold;
        let policy = unfamiliar.then_some(self.policy);
        if unfamiliar {
            &self.unfamiliar
        } else {
            &self.familiar
        }
        .fetch_add(1, Ordering::Relaxed);
        let live_ttft_ms = self.weigh_latency(&mut candidates);
        self.apply_guardrails(req, &mut candidates);
        order(&mut candidates, policy, cost_weight);
        let mut chain: Vec<(Arc<ModelConfig>, f64, Prospect)> = candidates
            .iter()
            .filter(|c| c.eligible)
            .filter_map(|c| {
                Some((
                    self.model(&c.model).cloned()?,
                    c.predicted_cost_usd,
                    Prospect {
                        utility: c.score + c.penalty,
                        standard_error: c.standard_error,
                        outcomes: self.artifact.outcomes(&c.model),
                    },
                ))
            })
            .collect();
        if chain.is_empty() {
            return Err(none_eligible(candidates));
        }
        let baseline = self
            .baseline
            .clone()
            .filter(|b| candidates.iter().any(|c| c.eligible && &c.model == b))
            .or_else(|| {
                candidates
                    .iter()
                    .filter(|c| c.eligible)
                    .max_by(|a, b| a.predicted_cost_usd.total_cmp(&b.predicted_cost_usd))
                    .map(|c| c.model.clone())
            });
        let exploration = self.explorer.apply(req, &mut chain, |c| c.1, |c| c.2);
        let chain: Vec<Arc<ModelConfig>> = chain.into_iter().map(|c| c.0).collect();
        let decision = LearnedDecision {
            non_text_parts: NonText {
                images: req.media.images,
                audio: req.media.audio,
            },
            live_ttft_ms,
            chosen: chain[0].id.clone(),
            candidates,
            baseline,
            pacing: None,
            knob: knob.to_string(),
            cost_weight,
            prompt_tokens: req.prompt_tokens,
            support,
            unfamiliar,
            policy,
            exploration,
            artifact_version: self.artifact.version().to_string(),
            encoder_id: self.encoder.id().to_string(),
            embedding_cache_hit: false,
            decision_ms: millis_since(started),
            queue_ms: 0.0,
        };
        Ok((chain, decision))
    }

    /// The candidates: served id, where its predictions come from (the artifact's outcomes of
    /// it; else its prior, per prompt through the artifact's profile when it has one) and where
    /// that prior comes from.
    pub fn candidates(&self) -> Vec<serde_json::Value> {
        self.priced
            .iter()
            .map(|p| {
                let outcomes = self.artifact.outcomes(&p.model);
                let basis = if outcomes > 0 {
                    Basis::Data
                } else if self.artifact.weights.profile.is_some() {
                    Basis::Profile
                } else {
                    Basis::Prior
                };
                json!({
                    "model": p.model,
                    "basis": basis,
                    "outcomes": outcomes,
                    "prior": p.prior,
                    "prior_source": self.prior_sources.get(&p.model),
                })
            })
            .collect()
    }

    /// The served model of a candidate by its served id.
    fn model(&self, id: &str) -> Option<&Arc<ModelConfig>> {
        self.models.iter().find(|m| m.id == id)
    }

    /// `[auto] latency_weight`: each candidate measured recently loses `weight × TTFT p50 in
    /// seconds` of score; returns the TTFTs used.
    fn weigh_latency(&self, scored: &mut [Scored]) -> BTreeMap<String, f64> {
        let mut used = BTreeMap::new();
        if self.latency_weight <= 0.0 {
            return used;
        }
        for c in scored {
            if let Some(ms) = self.live.estimate(&c.model).ttft_p50_ms {
                c.score -= self.latency_weight * ms / 1000.0;
                used.insert(c.model.clone(), ms);
            }
        }
        used
    }

    /// Evaluates every guardrail for every scored candidate; a candidate that fails one (or
    /// whose guardrail cannot be evaluated) is not eligible.
    fn apply_guardrails(&self, req: &ChatRequest, scored: &mut [Scored]) {
        if self.guardrails.is_empty() {
            return;
        }
        let vars = Vars::of(req).bindings();
        for c in scored {
            let Some(model) = self.model(&c.model) else {
                continue;
            };
            let live = if self.guardrails_read_live {
                self.live.estimate(&model.id)
            } else {
                Estimate::default()
            };
            let model = model_facts(model, &live);
            let scope = vars.with(&[("model", &model)]);
            c.guardrails = self
                .guardrails
                .iter()
                .map(|g| match g.eval_bool(&scope) {
                    Ok(passed) => Verdict {
                        expression: g.source.clone(),
                        passed,
                        error: None,
                    },
                    Err(e) => Verdict {
                        expression: g.source.clone(),
                        passed: false,
                        error: Some(e.to_string()),
                    },
                })
                .collect();
            c.eligible = c.guardrails.iter().all(|v| v.passed);
        }
    }
}

/// The 400 when every candidate fails a guardrail, listing what each failed.
fn none_eligible(candidates: Vec<Scored>) -> GatewayError {
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
    GatewayError::invalid(
        format!(
            "no candidate model passes the guardrails: {}",
            why.join("; ")
        ),
        "model",
    )
    .with_details(json!({"candidates": candidates}))
}
