//! The vendored model catalog (`config/catalog.toml`, embedded): prices, context window and max
//! output of current models of the major providers, so that a `[[models]]` entry can be just
//! its id. Explicit values in the config override it; `switchyard models` prints it.

use serde::Deserialize;
use std::sync::OnceLock;

/// The catalog file, embedded.
pub const CATALOG: &str = include_str!("../../config/catalog.toml");

/// One model of the catalog.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    /// `provider/model`; the provider is a preset of the default config.
    pub id: String,
    /// The provider's own name for it when it differs from the part after `provider/`.
    pub upstream: Option<String>,
    /// USD per million input and output tokens.
    pub input: f64,
    pub output: f64,
    pub context: u64,
    pub max_output: u64,
    /// A public quality figure as a fraction (e.g. MMLU 82.0 % -> 0.82), where one can be cited;
    /// `auto` uses it as the model's prior quality.
    pub quality: Option<f64>,
    /// Where `quality` comes from: the benchmark, the publisher and the date.
    pub quality_source: Option<String>,
}

/// Output-price tiers (USD per million output tokens, lower bounds) for models without a cited
/// quality figure.
pub const TIERS: [(f64, &str); 4] = [
    (0.0, "under $1"),
    (1.0, "$1-5"),
    (5.0, "$5-20"),
    (20.0, "$20 and over"),
];

fn tier(output_price: f64) -> usize {
    TIERS
        .iter()
        .rposition(|(lo, _)| output_price >= *lo)
        .unwrap_or(0)
}

/// What `auto` assumes of a model without outcome data when the config gives no prior: the
/// catalog's cited quality figure, otherwise the median cited figure of the catalog models in
/// its output-price tier (the nearest cheaper tier with one when its own has none). Returns the
/// quality and where it comes from.
pub fn prior(id: &str, output_price: f64) -> (f64, String) {
    if let Some((q, src)) = find(id).and_then(|m| Some((m.quality?, m.quality_source.clone()?))) {
        return (q, format!("catalog: {src}"));
    }
    let own = tier(output_price);
    for t in (0..=own).rev() {
        let mut cited: Vec<f64> = models()
            .iter()
            .filter(|m| tier(m.output) == t)
            .filter_map(|m| m.quality)
            .collect();
        if cited.is_empty() {
            continue;
        }
        cited.sort_by(f64::total_cmp);
        let n = cited.len();
        let median = (cited[(n - 1) / 2] + cited[n / 2]) / 2.0;
        let of = if t == own {
            String::new()
        } else {
            format!(" of tier {}", TIERS[t].1)
        };
        return (
            median,
            format!(
                "price tier {} (median of {n} cited catalog figures{of})",
                TIERS[own].1
            ),
        );
    }
    (0.5, "no cited figure in the catalog".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    date: String,
    model: Vec<CatalogModel>,
}

#[allow(
    clippy::expect_used,
    reason = "the catalog is embedded at build time and a unit test parses it"
)]
fn file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| toml::from_str(CATALOG).expect("the embedded catalog parses (tested)"))
}

/// The date the catalog's figures were taken.
pub fn date() -> &'static str {
    &file().date
}

/// Every model of the catalog, in file order.
pub fn models() -> &'static [CatalogModel] {
    &file().model
}

/// The catalog entry of a model id.
pub fn find(id: &str) -> Option<&'static CatalogModel> {
    models().iter().find(|m| m.id == id)
}

/// The catalog as a text table.
pub fn table() -> String {
    let mut s = format!(
        "Model catalog ({}; USD per million tokens; explicit [[models]] values override)\n\n{:<60} {:>8} {:>8} {:>10} {:>10}\n",
        date(),
        "id",
        "input",
        "output",
        "context",
        "max out"
    );
    for m in models() {
        s.push_str(&format!(
            "{:<60} {:>8.3} {:>8.3} {:>10} {:>10}\n",
            m.id, m.input, m.output, m.context, m.max_output
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_parses_with_unique_sane_entries_for_preset_providers() {
        let all = models();
        assert!(all.len() >= 30);
        let default = crate::config::DEFAULT_CONFIG;
        for (i, m) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|o| o.id != m.id), "{} twice", m.id);
            assert!(m.input >= 0.0 && m.output >= 0.0 && m.context > 0, "{m:?}");
            let provider = m.id.split('/').next().unwrap();
            assert!(
                default.contains(&format!("[providers.{provider}]")),
                "{provider} has no preset in the default config"
            );
        }
        assert_eq!(find("openai/gpt-4o-mini").unwrap().input, 0.15);
        assert!(date().starts_with("20"));
        for m in all {
            assert_eq!(
                m.quality.is_some(),
                m.quality_source.is_some(),
                "{}: a figure needs its source",
                m.id
            );
            assert!(m.quality.is_none_or(|q| (0.0..=1.0).contains(&q)), "{m:?}");
        }
    }

    #[test]
    fn a_prior_is_the_cited_figure_or_its_price_tiers_median() {
        let (q, src) = prior("openai/gpt-4o-mini", 0.6);
        assert_eq!(q, 0.82);
        assert!(src.starts_with("catalog: MMLU"), "{src}");
        // Claude Opus has no cited figure, nor has any model of its tier: the nearest cheaper
        // tier's median (GPT-4o 0.887 and GPT-4.1 0.902).
        let (q, src) = prior("anthropic/claude-opus-4-1", 75.0);
        assert!(src.contains("of tier $5-20"), "{src}");
        assert!((q - (0.887 + 0.902) / 2.0).abs() < 1e-9, "{q}");
        // A model outside the catalog (a mock) by its price alone.
        let (cheap, _) = prior("mock/fast", 0.6);
        let (strong, _) = prior("mock/smart", 30.0);
        assert!(cheap < strong, "{cheap} {strong}");
    }

    #[test]
    fn a_models_entry_needs_only_its_id_and_explicit_values_override() {
        let toml = r#"
[providers.openai]
kind = "openai"
[providers.groq]
kind = "openai"
base_url = "https://api.groq.com/openai/v1"
[[models]]
id = "openai/gpt-4o-mini"
[[models]]
id = "openai/gpt-4o"
output_price_per_mtok = 9.0
context_window = 1000
[[models]]
id = "groq/meta-llama/llama-4-scout-17b-16e-instruct"
[[models]]
id = "openai/not-in-the-catalog"
"#;
        let c = crate::config::Config::parse(toml, "t.toml", &|_| None).unwrap();
        let m = |id: &str| c.models.iter().find(|m| m.id == id).unwrap().clone();
        let mini = m("openai/gpt-4o-mini");
        assert_eq!(
            (mini.input_price_per_mtok, mini.output_price_per_mtok),
            (0.15, 0.60)
        );
        assert_eq!(
            (mini.context_window, mini.max_output_tokens),
            (128_000, 16_384)
        );
        let big = m("openai/gpt-4o");
        assert_eq!(
            (big.input_price_per_mtok, big.output_price_per_mtok),
            (2.5, 9.0)
        );
        assert_eq!((big.context_window, big.max_output_tokens), (1000, 16_384));
        let scout = m("groq/meta-llama/llama-4-scout-17b-16e-instruct");
        assert_eq!(scout.upstream, "meta-llama/llama-4-scout-17b-16e-instruct");
        assert_eq!(scout.input_price_per_mtok, 0.11);
        let other = m("openai/not-in-the-catalog");
        assert_eq!(
            (other.input_price_per_mtok, other.context_window),
            (0.0, 128_000)
        );
    }
}
