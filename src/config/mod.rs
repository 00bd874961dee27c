//! The TOML configuration, one file per section, each with its own validation: parsed into
//! typed structs and validated once at load time into a [`Config`] that the server uses
//! without further checks. Every error names the file, the key and the reason.
//! Imports only `cel`, `error` and the learned core's price type; everything above imports it.

pub mod auto;
pub mod catalog;
pub mod duration;
pub mod judge;
mod locate;
pub mod logging;
pub mod mock;
pub mod models;
pub mod routers;
pub mod server;
mod source;
pub mod store;

pub use auto::{cost_weight, AutoConfig};
pub use duration::parse_duration;
pub use logging::LoggingConfig;
pub use models::{ModelConfig, ProviderConfig, ProviderKind};
pub use routers::{
    pinned_artifacts, RouteAuto, RouteConfig, RouterConfig, SortBy, VariantConfig, VariantTarget,
};
pub use server::ServerConfig;
pub use source::ConfigError;
pub use store::StoreConfig;

use source::Source;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The configuration used when `--config` is not given: mock models that need no keys, and the
/// real OpenAI / Anthropic providers when their API keys are in the environment.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: server::FileServer,
    #[serde(default)]
    logging: logging::FileLogging,
    #[serde(default)]
    providers: BTreeMap<String, models::FileProvider>,
    #[serde(default)]
    models: Vec<models::FileModel>,
    #[serde(default)]
    routers: BTreeMap<String, routers::FileRouter>,
    auto: Option<auto::FileAuto>,
    judge: Option<judge::FileJudge>,
    store: Option<store::FileStore>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub source: String,
    pub server: ServerConfig,
    pub logging: LoggingConfig,
    pub providers: BTreeMap<String, Arc<ProviderConfig>>,
    pub models: Vec<Arc<ModelConfig>>,
    pub routers: BTreeMap<String, Arc<RouterConfig>>,
    pub auto: Option<AutoConfig>,
    pub judge: Option<judge::JudgeConfig>,
    /// `[store]`: PostgreSQL and Redis shared by replicas (none: files and memory).
    pub store: Option<store::StoreConfig>,
}

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "(file)".into(),
            reason: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, &file, &|k| std::env::var(k).ok())
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, "<embedded default config>", &|k| {
            std::env::var(k).ok()
        })
    }

    /// Parses and validates config text; `env` looks up environment variables.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let key = locate::toml_error_key(text, &e);
            err(&key, e.message().to_string())
        })?;

        let src = Source { file, env };
        let server = raw.server.validate(&src)?;
        let logging = raw.logging.build();
        let (providers, skipped) = models::providers(&raw.providers, &src)?;
        let models = models::models(&raw.models, &providers, &skipped, &src)?;
        let routers = routers::routers(
            &raw.routers,
            &models,
            (server.timeout, server.ttft_timeout),
            &src,
        )?;
        let auto = auto::auto(raw.auto.as_ref(), &models, &src)?;
        routers::check_auto_routes(&routers, auto.as_ref(), &src)?;
        let judge = judge::judge(raw.judge.as_ref(), &models, &routers, &src)?;
        let store = store::store(raw.store.as_ref(), &src)?;
        Ok(Config {
            source: file.to_string(),
            server,
            logging,
            providers,
            models,
            routers,
            auto,
            judge,
            store,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", &|k| {
            (k == "SET_KEY").then(|| "sk-123".into())
        })
    }

    const BASE: &str = r#"
[providers.mock]
kind = "mock"
[[models]]
id = "mock/a"
[[models]]
id = "mock/b"
"#;

    #[test]
    fn embedded_default_loads() {
        let c = Config::parse(DEFAULT_CONFIG, "default", &|_| None).unwrap();
        assert!(c.models.iter().any(|m| m.provider == "mock"));
        assert!(!c.providers.contains_key("openai"), "openai needs its key");
        // No key: auto over the offline mocks, no judge (a mock cannot grade).
        let auto = c.auto.as_ref().unwrap();
        let ids: Vec<&str> = auto.candidates.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["mock/smart", "mock/mid", "mock/fast"]);
        assert!(c.judge.is_none());
        let keys = |v: &str| (!v.ends_with("_BASE_URL")).then(|| "k".to_string());
        let with_keys = Config::parse(DEFAULT_CONFIG, "default", &keys).unwrap();
        assert!(with_keys.providers.contains_key("openai"));
        assert!(with_keys.providers.contains_key("anthropic"));
        // Every key set: auto spans the real chat models, the judge is the cheapest of them.
        let auto = with_keys.auto.as_ref().unwrap();
        assert!(auto.candidates.iter().all(|m| m.is_real_chat()));
        assert!(auto
            .candidates
            .iter()
            .any(|m| m.id == "anthropic/claude-sonnet-4-5"));
        let judge = &with_keys.judge.as_ref().unwrap().model;
        let lowest = with_keys
            .models
            .iter()
            .filter(|m| m.is_real_chat())
            .map(|m| m.output_price_per_mtok)
            .fold(f64::INFINITY, f64::min);
        let j = with_keys.models.iter().find(|m| &m.id == judge).unwrap();
        assert!(
            j.is_real_chat() && j.output_price_per_mtok == lowest,
            "{judge}"
        );
        // A base URL variable replaces the configured URL.
        let moved = |v: &str| match v {
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".to_string()),
            _ => keys(v),
        };
        let c = Config::parse(DEFAULT_CONFIG, "default", &moved).unwrap();
        assert_eq!(c.providers["openai"].base_url, "http://127.0.0.1:9/v1");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("800ms").unwrap(), Duration::from_millis(800));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("fast")
            .unwrap_err()
            .to_string()
            .contains("not a duration"));
        assert!(parse_duration("10 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unit"));
    }

    #[test]
    fn bad_cel_names_expression_and_key() {
        let e = parse(&format!(
            "{BASE}[routers.r]\nroutes = [{{ when = 'plan == = \"free\"', model = \"mock/a\" }}]\ndefault = {{ model = \"mock/b\" }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.routes[0].when");
        assert!(e.reason.contains("plan == = \"free\""), "{e}");
        assert!(e.to_string().contains("test.toml"));
    }

    #[test]
    fn weights_must_sum_to_100() {
        let e = parse(&format!(
            "{BASE}[routers.r]\ndefault = {{ variants = [{{ model = \"mock/a\", weight = 60 }}, {{ model = \"mock/b\", weight = 30 }}] }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.default.variants");
        assert!(e.reason.contains("sum to 90"));
    }

    #[test]
    fn unknown_model_in_route() {
        let e = parse(&format!(
            "{BASE}[routers.r]\ndefault = {{ model = \"mock/zzz\", fallbacks = [] }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.default.model");
        assert!(e.reason.contains("unknown model \"mock/zzz\""));
        let e = parse(&format!(
            "{BASE}[routers.r]\ndefault = {{ model = \"mock/a\", fallbacks = [\"mock/q\"] }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.default.fallbacks[0]");
    }

    #[test]
    fn missing_env_var_for_used_provider() {
        let e =
            parse("[providers.oai]\nkind = \"openai\"\napi_key_env = \"UNSET_KEY\"\n").unwrap_err();
        assert_eq!(e.key, "providers.oai.api_key_env");
        assert!(e.reason.contains("UNSET_KEY is not set"));
        let ok = parse("[providers.oai]\nkind = \"openai\"\napi_key_env = \"SET_KEY\"\n").unwrap();
        assert_eq!(ok.providers["oai"].api_key.as_deref(), Some("sk-123"));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_reported_with_location() {
        let e = parse("[server]\nlisten = \"127.0.0.1:1\"\ntimeoutt = \"1s\"\n").unwrap_err();
        assert!(e.reason.contains("timeoutt"), "{e}");
        assert!(e.key.starts_with("server"), "{e}");
        let e = parse(&format!(
            "{BASE}[routers.r]\ntimeout = \"soon\"\ndefault = {{ model = \"mock/a\" }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.timeout");
    }
}
