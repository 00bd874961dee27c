//! The `switchyard` command line.

#![allow(clippy::print_stdout, reason = "the command line prints its results")]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use switchyard::app::Server;
use switchyard::config::Config;
use switchyard::store::admin;
use switchyard::store::keys::VirtualKey;
use switchyard::testing::upstream::MockUpstream;

/// mimalloc: a request's many small allocations cost about half of glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option by its number in `mi_option_e` (v3, `mimalloc.h`).
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Freed pages go back to the system at once instead of after mimalloc's 1 s, so that memory
/// freed after a burst (or after loading the artifact) leaves the gateway's RSS (with
/// `.cargo/config.toml`'s arena setting, a gateway starts at 55 MB instead of 90 MB; no cost per
/// request measured). `MIMALLOC_PURGE_DELAY`
/// set in the environment wins.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is a plain store in mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A learned LLM router with an OpenAI- and Anthropic-compatible API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// TOML config file; without it the embedded default config is used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `server.listen`), e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a config file and print what it defines.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the embedded default config (a starting point for your own).
    DefaultConfig,
    /// Print the model catalog: prices per million tokens, context window and max output of
    /// current models, used for `[[models]]` entries that do not give them.
    Models {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compare a router's routes and variants on the logged traffic (e.g. two artifacts in a
    /// staged rollout): requests, mean feedback with a 95 % interval, cost per 1k requests,
    /// TTFT p50 / p99, failover and error rates.
    Report {
        /// The router, `NAME` or `router/NAME`.
        #[arg(long)]
        router: String,
        /// The log directory; default: the config's `[logging] dir`.
        #[arg(long)]
        logs: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Train a router artifact (runs the `switchyard-train` binary; see `switchyard train --help`).
    Train {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Evaluate a router artifact against static baselines (runs `switchyard-train eval`; see
    /// `switchyard eval --help`): writes evals/reports/<version>/. With `--logs DIR`: off-policy
    /// evaluation on the logged `auto` traffic (`switchyard-train ope`), evals/reports/ope-<version>/.
    Eval {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Apply the shared store's migrations (`[store] postgres_env`); `serve` also does.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Virtual keys in the shared store: create, list, revoke, rotate.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Spend from the shared store, grouped by key, team, model, router or day.
    Spend {
        #[arg(long, default_value = "key")]
        by: String,
        /// How far back: 1h, 7d, 30d ...
        #[arg(long, default_value = "30d")]
        since: String,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write the shared store's requests and feedback as NDJSON (what `train --logs` reads).
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run a scripted OpenAI/Anthropic-compatible mock upstream (for tests and benchmarks).
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key; it is printed once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// The team it belongs to: it sees only its team's requests in analytics, spend and
        /// feedback (default: the `team` of --metadata; without one, only its own requests).
        #[arg(long)]
        team: Option<String>,
        /// Models and routers it may use (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Metadata merged into its requests, e.g. team=ml,plan=pro (visible to CEL).
        #[arg(long, value_delimiter = ',')]
        metadata: Vec<String>,
        #[arg(long)]
        rpm: Option<i64>,
        #[arg(long)]
        tpm: Option<i64>,
        /// USD per UTC day.
        #[arg(long)]
        budget_day: Option<f64>,
        /// USD per UTC month.
        #[arg(long)]
        budget_month: Option<f64>,
        /// When Redis is unreachable: open (admit) or closed (refuse); default: [store] on_redis_error.
        #[arg(long)]
        on_redis_error: Option<String>,
    },
    /// List every key (policies, never secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
    /// Give a key a new secret; the old one stops working.
    Rotate { id: String },
}

fn load(config: &Option<PathBuf>) -> Result<Config, String> {
    match config {
        Some(p) => Config::load(p),
        None => Config::embedded_default(),
    }
    .map_err(|e| e.to_string())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Without a SIGTERM handler (it cannot be installed), Ctrl-C still stops the server.
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { config, listen } => {
            let config_path = config.clone();
            let config = load(&config)?;
            let listen = listen.unwrap_or_else(|| config.server.listen.clone());
            let source = config.source.clone();
            let models = config.models.len();
            let routers = config.routers.len();
            let server = Server::start_from(config, &listen, config_path)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(addr = %server.addr, config = %source, models, routers, "switchyard listening");
            println!(
                "switchyard listening on http://{} ({source}: {models} models, {routers} routers)",
                server.addr
            );
            wait_for_signal().await;
            tracing::info!("shutting down: draining in-flight requests and flushing logs");
            server.stop().await;
            Ok(())
        }
        Command::CheckConfig { config } => {
            let c = load(&config)?;
            println!("{}: OK", c.source);
            for m in &c.models {
                println!(
                    "  model  {} (upstream {:?}, ${}/${} per Mtok)",
                    m.id, m.upstream, m.input_price_per_mtok, m.output_price_per_mtok
                );
            }
            for r in c.routers.values() {
                println!(
                    "  router router/{} ({} routes + default)",
                    r.name,
                    r.routes.len()
                );
            }
            if let Some(a) = &c.auto {
                // Whether the artifact has outcomes of a candidate shows at serve time
                // (`/v1/models`); here: each candidate's prior and where it comes from.
                for m in &a.candidates {
                    let prior = a.priors.get(&m.id).map_or(f64::NAN, |p| p.quality);
                    let source = a.prior_sources.get(&m.id).map_or("", String::as_str);
                    println!("  auto   {} (prior {prior:.3}: {source})", m.id);
                }
            }
            Ok(())
        }
        Command::DefaultConfig => {
            print!("{}", switchyard::config::DEFAULT_CONFIG);
            Ok(())
        }
        Command::Models { json } => {
            use switchyard::config::catalog;
            if json {
                let v = serde_json::json!({"date": catalog::date(), "models": catalog::models()});
                println!("{v:#}");
            } else {
                print!("{}", catalog::table());
            }
            Ok(())
        }
        Command::Report {
            router,
            logs,
            config,
            json,
        } => {
            let dir = match logs {
                Some(d) => d,
                None => load(&config)?.logging.dir,
            };
            let router = router.trim_start_matches("router/");
            let report = switchyard::observe::report::compare(&dir, router)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            if json {
                println!("{report:#}");
            } else {
                print!("{}", switchyard::observe::report::markdown(&report));
            }
            Ok(())
        }
        Command::Migrate { config } => {
            println!(
                "{}",
                admin::migrate(&load(&config)?)
                    .await
                    .map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::Keys { action, config } => {
            let config = load(&config)?;
            let out = match action {
                KeysAction::Create {
                    name,
                    team,
                    models,
                    metadata,
                    rpm,
                    tpm,
                    budget_day,
                    budget_month,
                    on_redis_error,
                } => {
                    let metadata = metadata
                        .iter()
                        .map(|kv| {
                            kv.split_once('=')
                                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                                .ok_or_else(|| format!("--metadata takes key=value, got {kv:?}"))
                        })
                        .collect::<Result<_, _>>()?;
                    let on_redis_error = on_redis_error
                        .map(|m| {
                            serde_json::from_value(serde_json::json!(m)).map_err(|_| {
                                format!("--on-redis-error is open or closed, got {m:?}")
                            })
                        })
                        .transpose()?;
                    let spec = VirtualKey {
                        name,
                        team,
                        models,
                        metadata,
                        rpm,
                        tpm,
                        budget_day_usd: budget_day,
                        budget_month_usd: budget_month,
                        on_redis_error,
                        ..VirtualKey::default()
                    };
                    admin::create_key(&config, spec)
                        .await
                        .map_err(|e| e.to_string())?
                }
                KeysAction::List => format!(
                    "{:#}",
                    admin::list_keys(&config).await.map_err(|e| e.to_string())?
                ),
                KeysAction::Revoke { id } => admin::revoke_key(&config, &id)
                    .await
                    .map_err(|e| e.to_string())?,
                KeysAction::Rotate { id } => admin::rotate_key(&config, &id)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            println!("{out}");
            Ok(())
        }
        Command::Spend {
            by,
            since,
            config,
            json,
        } => {
            let span =
                switchyard::config::parse_duration(&since).map_err(|e| format!("--since: {e}"))?;
            let since_ms = switchyard::clock::unix_millis().saturating_sub(span.as_millis() as u64);
            let report = admin::spend(&load(&config)?, &by, since_ms)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{report:#}");
            } else {
                println!(
                    "{:<40} {:>10} {:>14} {:>14} {:>14}",
                    by, "requests", "cost USD", "prompt tok", "completion tok"
                );
                for r in report["rows"].as_array().into_iter().flatten() {
                    println!(
                        "{:<40} {:>10} {:>14.6} {:>14} {:>14}",
                        r[by.as_str()].as_str().unwrap_or("(none)"),
                        r["requests"],
                        r["cost_usd"].as_f64().unwrap_or(0.0),
                        r["prompt_tokens"],
                        r["completion_tokens"]
                    );
                }
            }
            Ok(())
        }
        Command::Export { out, config } => {
            println!(
                "{}",
                admin::export(&load(&config)?, &out)
                    .await
                    .map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::Train { args } => run_training(&from_store(args).await?),
        Command::Eval { args } => {
            let args = from_store(args).await?;
            let on_logs = args
                .iter()
                .any(|a| a == "--logs" || a.starts_with("--logs="));
            let step = if on_logs { "ope" } else { "eval" };
            run_training(&[vec![step.to_string()], args].concat())
        }
        Command::MockUpstream { listen } => {
            let mock = MockUpstream::start(&listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            println!("mock upstream listening on {}", mock.base_url());
            tokio::select! {
                _ = wait_for_signal() => {}
                _ = mock.wait() => {}
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--from-store CONFIG` in the arguments of `train` / `eval`: exports the shared store of
/// that config's `[store]` to a fresh directory and passes it as `--logs`.
async fn from_store(mut args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(i) = args.iter().position(|a| a == "--from-store") else {
        return Ok(args);
    };
    let config = args
        .get(i + 1)
        .cloned()
        .ok_or("--from-store takes the config file whose [store] to read")?;
    args.drain(i..i + 2);
    let dir = std::env::temp_dir().join(format!("switchyard-store-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{}",
        admin::export(&load(&Some(config.into()))?, &dir)
            .await
            .map_err(|e| e.to_string())?
    );
    args.push("--logs".into());
    args.push(dir.display().to_string());
    Ok(args)
}

/// Runs the sibling `switchyard-train` binary (polars lives there, not in the server).
fn run_training(args: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let train = exe.with_file_name("switchyard-train");
    if !train.exists() {
        return Err(format!(
            "{} is not built; build it with `cargo build --release -p switchyard-training` (it holds polars, kept out of the server)",
            train.display()
        ));
    }
    let status = std::process::Command::new(&train)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", train.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", train.display()))
    }
}
