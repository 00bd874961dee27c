//! User feedback on served requests (`POST /v1/feedback`), stored durably as NDJSON next to the
//! request log (`feedback-*.ndjson`) so that the training pipeline can join it to the log by
//! request id.
//!
//! Idempotent per (request_id, source): posting again replaces the earlier feedback; every post
//! is appended, and readers take the last record per pair.

use super::recent::Recent;
pub use super::recent::Served;
use crate::error::{ErrorKind, GatewayError};
use crate::observe::logstore::RotatingWriter;
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;
use switchyard_learn::logfiles::{ndjson_files, read_feedback};
use switchyard_learn::schema::{FeedbackRecord, LogRecord};

/// How many of the most recent served requests accept feedback by default
/// (`logging.feedback_window`).
pub const DEFAULT_WINDOW: usize = 200_000;

/// Validated feedback, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub request_id: String,
    pub source: String,
    pub score: f64,
    pub thumbs: Option<String>,
    pub comment: Option<String>,
    pub model: String,
    /// The key that gave it (None: the server itself, or a server without keys).
    pub key: Option<String>,
}

impl Feedback {
    /// The row the shared store keeps of it.
    pub fn row(&self) -> crate::store::pg::FeedbackRow<'_> {
        crate::store::pg::FeedbackRow {
            request_id: &self.request_id,
            source: &self.source,
            model: &self.model,
            score: self.score,
            thumbs: self.thumbs.as_deref(),
            comment: self.comment.as_deref(),
            key: self.key.as_deref(),
        }
    }
}

/// Who posts feedback: their key's id, and whether it is an admin (a router key of the
/// config, or no keys configured), which may give feedback on any request.
#[derive(Debug, Clone, Default)]
pub struct Giver {
    pub key: Option<String>,
    pub admin: bool,
}

/// Whether the server itself writes feedback under this source (the judge), so clients may
/// not.
pub fn reserved_source(source: &str) -> bool {
    source.trim().to_ascii_lowercase().starts_with("judge")
}

/// The feedback file writer and the index of requests it may refer to.
pub struct FeedbackStore {
    writer: Option<Mutex<RotatingWriter>>,
    recent: Mutex<Recent>,
}

impl FeedbackStore {
    /// Opens the store in the log dir, indexing the newest `window` served requests already
    /// there (older ones no longer accept feedback) and the feedback given for them. Startup
    /// reads log files newest first and stops once the window is full, so its time and memory
    /// are bounded by the window, not by the size of the log dir. Without a log dir (logging
    /// disabled) feedback is refused.
    pub fn open(dir: Option<&Path>, window: usize) -> FeedbackStore {
        let mut recent = Recent::new(window);
        if let Some(dir) = dir {
            for (id, served) in newest_served(dir, recent.window) {
                recent.insert(&id, &served);
            }
            for f in read_feedback(dir).unwrap_or_default() {
                recent.give(&f.request_id, &f.source);
            }
        }
        FeedbackStore {
            writer: dir.map(|d| {
                Mutex::new(RotatingWriter::new(
                    d.to_path_buf(),
                    "feedback",
                    64 * 1024 * 1024,
                ))
            }),
            recent: Mutex::new(recent),
        }
    }

    /// Remembers a served request (called when its log record is written).
    pub fn remember(&self, request_id: &str, served: Served) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request_id, &served);
    }

    /// What the index holds now and the most it can hold, in bytes (`/metrics`).
    pub fn memory(&self) -> (usize, usize) {
        let r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        (r.bytes(), r.bound_bytes())
    }

    /// Whether this replica knows the request (served it, or learned of it from the store).
    pub fn knows(&self, request_id: &str) -> bool {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(request_id)
    }

    /// Validates a feedback body against the known requests: the request must have been made
    /// by the giver's key (unless the giver is an admin), and a source the server writes is
    /// refused.
    pub fn validate(&self, body: &Value, giver: &Giver) -> Result<Feedback, GatewayError> {
        let request_id = body
            .get("request_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| GatewayError::invalid("`request_id` is required (the id in `metadata.request_id` or the x-switchyard-request-id header)", "request_id"))?;
        let (score, thumbs) = match (body.get("score"), body.get("thumbs")) {
            (Some(s), None) => match s.as_f64() {
                Some(v) if (0.0..=1.0).contains(&v) => (v, None),
                _ => {
                    return Err(GatewayError::invalid(
                        "`score` must be a number between 0 and 1",
                        "score",
                    ))
                }
            },
            (None, Some(t)) => match t.as_str() {
                Some("up") => (1.0, Some("up".to_string())),
                Some("down") => (0.0, Some("down".to_string())),
                _ => {
                    return Err(GatewayError::invalid(
                        "`thumbs` must be \"up\" or \"down\"",
                        "thumbs",
                    ))
                }
            },
            (Some(_), Some(_)) => {
                return Err(GatewayError::invalid(
                    "give either `score` or `thumbs`, not both",
                    "score",
                ))
            }
            (None, None) => {
                return Err(GatewayError::invalid(
                    "`score` (0 to 1) or `thumbs` (\"up\"/\"down\") is required",
                    "score",
                ))
            }
        };
        let comment = match body.get("comment") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) if c.chars().count() <= 10_000 => Some(c.clone()),
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`comment` must be a string of at most 10000 characters",
                    "comment",
                ))
            }
        };
        let source = match body.get("source") {
            None | Some(Value::Null) => "user".to_string(),
            Some(Value::String(s)) if reserved_source(s) => {
                return Err(GatewayError::new(
                    ErrorKind::Forbidden,
                    format!("`source` {s:?} is reserved: the server's judge writes it"),
                )
                .with_param("source"))
            }
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 100 => s.clone(),
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`source` must be a non-empty string of at most 100 characters",
                    "source",
                ))
            }
        };
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let window = recent.window;
        // Another key's request is answered like an unknown one (its existence is not shown).
        let Served { models, .. } = recent
            .get(request_id)
            .filter(|s| giver.admin || (s.key.is_some() && s.key == giver.key))
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::NotFound,
                    format!("no served request of this key has the id {request_id:?} among the newest {} (logging.feedback_window)", window),
                )
                .with_param("request_id")
            })?;
        let model = match body.get("model") {
            None | Some(Value::Null) => models[0].clone(),
            Some(Value::String(m)) if models.contains(m) => m.clone(),
            Some(m) => {
                return Err(GatewayError::invalid(
                    format!(
                        "request {request_id} was not sent to model {m}; it was sent to {}",
                        models.join(", ")
                    ),
                    "model",
                ))
            }
        };
        Ok(Feedback {
            request_id: request_id.to_string(),
            source,
            score,
            thumbs,
            comment,
            model,
            key: giver.key.clone(),
        })
    }

    /// Appends the feedback to disk before returning; `Ok(true)` if it replaced earlier feedback.
    pub fn store(&self, f: &Feedback) -> Result<bool, GatewayError> {
        let Some(writer) = &self.writer else {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "feedback needs logging enabled ([logging] enabled = true)",
            ));
        };
        let now = crate::clock::unix_millis();
        let record = FeedbackRecord {
            ts: crate::clock::rfc3339_millis(now).into(),
            ts_ms: now,
            request_id: f.request_id.as_str().into(),
            source: f.source.as_str().into(),
            score: f.score,
            thumbs: f.thumbs.as_deref().map(Into::into),
            comment: f.comment.as_deref().map(Into::into),
            model: Some(f.model.as_str().into()),
            key: f.key.as_deref().map(Into::into),
        };
        let line = serde_json::to_vec(&record).unwrap_or_default();
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_line(&line).map_err(|e| {
            GatewayError::new(
                ErrorKind::Internal,
                format!("could not store feedback: {e}"),
            )
        })?;
        drop(w);
        let replaced = self
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .give(&f.request_id, &f.source);
        Ok(replaced)
    }
}

/// The newest `limit` served requests of the log dir, oldest first: (request id, models tried,
/// serving model first). Reads files newest first and stops when it has enough.
fn newest_served(dir: &Path, limit: usize) -> Vec<(String, Served)> {
    let mut newest_first = Vec::new();
    let files = ndjson_files(dir, "requests").unwrap_or_default();
    for file in files.iter().rev() {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().rev() {
            let Ok(r) = serde_json::from_str::<LogRecord>(line) else {
                continue;
            };
            let Some(served) = r.model else { continue };
            let mut models = vec![served.to_string()];
            models.extend(
                r.attempts
                    .iter()
                    .map(|a| a.model.clone())
                    .filter(|m| *m != served),
            );
            newest_first.push((
                r.request_id.into_owned(),
                Served {
                    models,
                    key: r.key.map(|k| k.into_owned()),
                },
            ));
            if newest_first.len() >= limit {
                newest_first.reverse();
                return newest_first;
            }
        }
    }
    newest_first.reverse();
    newest_first
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ADMIN: Giver = Giver {
        key: None,
        admin: true,
    };

    fn store() -> FeedbackStore {
        let s = FeedbackStore::open(None, DEFAULT_WINDOW);
        s.remember(
            "r1",
            Served {
                models: vec!["mock/fast".into(), "mock/flaky".into()],
                key: Some("vk_a".into()),
            },
        );
        s
    }

    #[test]
    fn only_the_key_that_made_a_request_or_an_admin_gives_feedback_and_judge_is_reserved() {
        let s = store();
        let body = json!({"request_id": "r1", "score": 1});
        let as_key = |k: &str| Giver {
            key: Some(k.into()),
            admin: false,
        };
        let f = s.validate(&body, &as_key("vk_a")).unwrap();
        assert_eq!(f.key.as_deref(), Some("vk_a"));
        let e = s.validate(&body, &as_key("vk_b")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("of this key"), "{}", e.message);
        assert!(s.validate(&body, &ADMIN).is_ok());
        for source in ["judge", "Judge", "judge-pairwise"] {
            let e = s
                .validate(
                    &json!({"request_id": "r1", "score": 1, "source": source}),
                    &ADMIN,
                )
                .unwrap_err();
            assert_eq!(
                (e.kind, e.param.as_deref()),
                (ErrorKind::Forbidden, Some("source"))
            );
        }
        let f = s
            .validate(
                &json!({"request_id": "r1", "score": 1, "source": "app \"beta\""}),
                &ADMIN,
            )
            .unwrap();
        assert_eq!(f.source, "app \"beta\"");
    }

    #[test]
    fn validates_scores_thumbs_and_models() {
        let s = store();
        let f = s
            .validate(&json!({"request_id": "r1", "thumbs": "up"}), &ADMIN)
            .unwrap();
        assert_eq!(
            (f.score, f.model.as_str(), f.source.as_str()),
            (1.0, "mock/fast", "user")
        );
        let f = s
            .validate(
                &json!({"request_id": "r1", "score": 0.25, "model": "mock/flaky", "source": "app"}),
                &ADMIN,
            )
            .unwrap();
        assert_eq!((f.score, f.model.as_str()), (0.25, "mock/flaky"));
        assert_eq!(
            s.validate(&json!({"request_id": "zz", "score": 1}), &ADMIN)
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.validate(&json!({"request_id": "r1", "score": 1.5}), &ADMIN)
                .unwrap_err()
                .param
                .as_deref(),
            Some("score")
        );
        assert_eq!(
            s.validate(&json!({"request_id": "r1", "thumbs": "sideways"}), &ADMIN)
                .unwrap_err()
                .param
                .as_deref(),
            Some("thumbs")
        );
        assert_eq!(
            s.validate(
                &json!({"request_id": "r1", "score": 1, "model": "x/y"}),
                &ADMIN
            )
            .unwrap_err()
            .param
            .as_deref(),
            Some("model")
        );
        assert!(s.validate(&json!({"request_id": "r1"}), &ADMIN).is_err());
    }

    #[test]
    fn indexes_requests_already_logged_in_the_dir() {
        let dir = std::env::temp_dir().join(format!("sy-fb-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("requests-a.ndjson"),
            "{\"request_id\":\"old\",\"model\":\"m/a\",\"attempts\":[{\"model\":\"m/b\"},{\"model\":\"m/a\"}]}\n{\"request_id\":\"failed\",\"model\":null,\"attempts\":[]}\n",
        )
        .unwrap();
        let s = FeedbackStore::open(Some(&dir), DEFAULT_WINDOW);
        let f = s
            .validate(&json!({"request_id": "old", "score": 0.5}), &ADMIN)
            .unwrap();
        assert_eq!(f.model, "m/a");
        assert!(s
            .validate(
                &json!({"request_id": "old", "score": 0.5, "model": "m/b"}),
                &ADMIN
            )
            .is_ok());
        assert!(s
            .validate(&json!({"request_id": "failed", "score": 0.5}), &ADMIN)
            .is_err());
        assert!(!s.store(&f).unwrap());
        assert!(
            s.store(&f).unwrap(),
            "second post for the same source replaces"
        );
        assert_eq!(read_feedback(&dir).unwrap().len(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn startup_indexes_only_the_newest_window_of_requests() {
        let dir = std::env::temp_dir().join(format!("sy-fbw-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // Three files, oldest first by name; 10 served requests each.
        for (f, name) in [
            "requests-1.ndjson",
            "requests-2.ndjson",
            "requests-3.ndjson",
        ]
        .iter()
        .enumerate()
        {
            let lines: String = (0..10)
                .map(|i| format!("{{\"request_id\":\"r{f}-{i}\",\"model\":\"m/a\",\"attempts\":[{{\"model\":\"m/a\"}}],\"prompt\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}\n"))
                .collect();
            std::fs::write(dir.join(name), lines).unwrap();
        }
        let s = FeedbackStore::open(Some(&dir), 15);
        let ok = |id: &str| {
            s.validate(&json!({"request_id": id, "score": 1}), &ADMIN)
                .is_ok()
        };
        assert!(ok("r2-9") && ok("r2-0") && ok("r1-5"), "the newest 15");
        assert!(
            !ok("r1-4") && !ok("r0-9") && !ok("r0-0"),
            "older ones are out"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
