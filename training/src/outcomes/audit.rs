//! The audit of benchmark outcome labels before training: each model's accuracy per
//! (benchmark, subject) against its published overall score. A subject where a model scores
//! below chance cannot be right for a model of that published level (an answer-extraction
//! artefact in the source files is the likely cause) and is excluded by default; one far below
//! the published score is flagged for a person to look at and kept unless excluded.

use super::Row;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Published overall scores: GPT-4 (OpenAI, GPT-4 Technical Report, 2023: MMLU 5-shot 86.4 %,
/// GSM8K 5-shot chain-of-thought 92.0 %) and Mixtral 8x7B (Jiang et al., Mixtral of Experts,
/// 2024: MMLU 70.6 %, GSM8K maj@8 74.4 %).
const PUBLISHED: [(&str, &str, f64); 4] = [
    ("mmlu", "gpt-4-1106-preview", 0.864),
    ("gsm8k", "gpt-4-1106-preview", 0.920),
    ("mmlu", "mistralai/Mixtral-8x7B-Instruct-v0.1", 0.706),
    ("gsm8k", "mistralai/Mixtral-8x7B-Instruct-v0.1", 0.744),
];
/// Chance accuracy of a four-option multiple-choice question.
const MMLU_CHANCE: f64 = 0.25;
/// A subject this far below the model's published overall score is flagged.
const SUSPECT_GAP: f64 = 0.30;

/// What the audit says of one (benchmark, subject, model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    /// Far below the published score: flagged, kept unless excluded.
    Suspect,
    /// Below chance: labels cannot be right; excluded by default.
    Broken,
}

/// One audited group.
#[derive(Debug, Clone)]
pub struct Entry {
    pub source: String,
    pub category: String,
    pub model: String,
    pub n: usize,
    pub accuracy: f64,
    pub published: f64,
    pub status: Status,
}

/// The audit of a set of outcome rows.
pub struct Audit {
    pub entries: Vec<Entry>,
}

/// Audits benchmark rows (by their `source_model`); feedback and MT-Bench (judge scores, no
/// published per-category figure) are not audited.
pub fn audit(rows: &[Row]) -> Audit {
    let mut groups: BTreeMap<(String, String, String), (usize, f64)> = BTreeMap::new();
    for r in rows {
        let g = groups
            .entry((r.source.clone(), r.category.clone(), r.source_model.clone()))
            .or_default();
        g.0 += 1;
        g.1 += r.quality;
    }
    let entries = groups
        .into_iter()
        .filter_map(|((source, category, model), (n, sum))| {
            let published = PUBLISHED
                .iter()
                .find(|(s, m, _)| *s == source && *m == model)?
                .2;
            let accuracy = sum / n as f64;
            let status = if source == "mmlu" && accuracy < MMLU_CHANCE {
                Status::Broken
            } else if accuracy < published - SUSPECT_GAP {
                Status::Suspect
            } else {
                Status::Ok
            };
            Some(Entry {
                source,
                category,
                model,
                n,
                accuracy,
                published,
                status,
            })
        })
        .collect();
    Audit { entries }
}

impl Audit {
    /// `source/category` groups to drop: broken ones (and suspect ones with `suspect`), plus
    /// the ones named in `extra`.
    pub fn excluded(&self, suspect: bool, extra: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.status == Status::Broken || (suspect && e.status == Status::Suspect))
            .map(|e| format!("{}/{}", e.source, e.category))
            .chain(extra.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The audit as Markdown: flagged groups first, then every group.
    pub fn markdown(&self, excluded: &[String]) -> String {
        let mut s = String::from(
            "# Outcome data audit\n\nWritten by `switchyard-train import`. Each model's accuracy per benchmark subject \
             against its published overall score (GPT-4: MMLU 86.4 %, GSM8K 92.0 %, GPT-4 Technical Report; Mixtral 8x7B: \
             MMLU 70.6 %, GSM8K 74.4 %, Mixtral of Experts). **broken**: below chance on four-option MMLU (25 %) — the \
             labels cannot be right for a model of that level; excluded by default. **suspect**: more than 30 points \
             below the published score — flagged, kept unless excluded (`--exclude-suspect`, or `--exclude mmlu/<subject>`).\n\n",
        );
        let _ = writeln!(
            s,
            "Excluded from this outcome table: {}\n",
            if excluded.is_empty() {
                "nothing".to_string()
            } else {
                excluded
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let mut sorted: Vec<&Entry> = self.entries.iter().collect();
        sorted.sort_by(|a, b| {
            b.status
                .cmp(&a.status)
                .then(a.accuracy.total_cmp(&b.accuracy))
        });
        let _ = writeln!(s, "| benchmark | subject | model | prompts | accuracy | published overall | status |\n|---|---|---|---|---|---|---|");
        for e in sorted {
            let status = match e.status {
                Status::Ok => "ok",
                Status::Suspect => "**suspect**",
                Status::Broken => "**broken**",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.3} | {:.3} | {status} |",
                e.source, e.category, e.model, e.n, e.accuracy, e.published
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(category: &str, model: &str, quality: f64) -> Row {
        Row {
            propensity: 1.0,
            metadata: String::new(),
            prompt: "q".into(),
            source: "mmlu".into(),
            category: category.into(),
            model: model.into(),
            source_model: model.into(),
            quality,
            input_tokens: 1,
            output_tokens: 1,
            origin: String::new(),
        }
    }

    #[test]
    fn below_chance_is_broken_and_far_below_published_is_suspect() {
        let g = "gpt-4-1106-preview";
        let mut rows = vec![];
        for i in 0..100 {
            rows.push(row("maths", g, f64::from(u8::from(i < 3))));
            rows.push(row("physics", g, f64::from(u8::from(i < 48))));
            rows.push(row("biology", g, f64::from(u8::from(i < 94))));
        }
        let a = audit(&rows);
        let status = |c: &str| a.entries.iter().find(|e| e.category == c).unwrap().status;
        assert_eq!(
            (status("maths"), status("physics"), status("biology")),
            (Status::Broken, Status::Suspect, Status::Ok)
        );
        assert_eq!(a.excluded(false, &[]), ["mmlu/maths"]);
        assert_eq!(
            a.excluded(true, &["gsm8k/x".into()]),
            ["gsm8k/x", "mmlu/maths", "mmlu/physics"]
        );
        assert!(a
            .markdown(&a.excluded(false, &[]))
            .contains("| mmlu | maths | gpt-4-1106-preview | 100 | 0.030 | 0.864 | **broken** |"));
    }
}
