//! The artifact's `report.md`: what the manifest records, as a page to read.

use std::fmt::Write as _;
use switchyard_learn::schema::Manifest;

/// A value as compact JSON (how the report shows numbers that may be absent).
pub fn js(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Where a fit's time went.
pub struct Times {
    /// Embeddings found in the cache, and computed.
    pub cached: usize,
    pub computed: usize,
    pub embed_secs: f64,
    pub fit_secs: f64,
    pub total_secs: f64,
}

pub fn report(m: &Manifest, t: &Times) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "# Router artifact {}\n", m.version);
    let _ = writeln!(
        r,
        "- Encoder: `{}` (dimension {}), features: `{}`",
        m.encoder.id, m.encoder.dimension, m.feature_spec
    );
    let td = &m.training_data;
    let _ = writeln!(
        r,
        "- Training data: `{}` ({} rows, sha256 `{}`), split column `{}`, seed {}",
        td.path, td.rows, td.sha256, td.split_column, m.seed
    );
    let _ = writeln!(r, "- Prompts per split: {}", js(&td.prompts_per_split));
    let hp = m.hyperparameters.as_ref();
    let _ = writeln!(
        r,
        "- Label: good answer when quality ≥ {}; ridge strength chosen on validation squared error from {}; blend {}",
        m.good_answer_threshold,
        js(&hp.map(|h| &h.ridge_grid)),
        js(&hp.map(|h| &h.blend))
    );
    let _ = writeln!(
        r,
        "- Support threshold (unfamiliar below): {}",
        js(&m.support)
    );
    let _ = writeln!(
        r,
        "- Time: embeddings {} cached + {} computed in {:.1}s; fitting {:.1}s; total {:.1}s\n",
        t.cached, t.computed, t.embed_secs, t.fit_secs, t.total_secs
    );
    let _ = writeln!(r, "## Validation metrics\n\n| model | n | positive rate | accuracy | AUC | Brier | ECE | log-loss | AUC linear / kNN part | ridge strength |\n|---|---|---|---|---|---|---|---|---|---|");
    for (model, x) in m.metrics.iter().flat_map(|v| &v.validation) {
        let _ = writeln!(
            r,
            "| {model} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            x.n,
            js(&x.positive_rate),
            js(&x.accuracy),
            js(&x.auc),
            js(&x.brier),
            js(&x.ece),
            js(&x.log_loss),
            js(&x.linear_part.as_ref().and_then(|p| p.auc)),
            js(&x.knn_part.as_ref().and_then(|p| p.auc)),
            js(&hp.and_then(|h| h.ridge_strength.get(model)))
        );
    }
    r
}
