//! The `switchyard` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use switchyard::app::Server;
use switchyard::config::Config;
use switchyard::testing::upstream::MockUpstream;

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
    /// Run a scripted OpenAI/Anthropic-compatible mock upstream (for tests and benchmarks).
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
    },
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
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
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
        Command::Train { args } => run_training(&args),
        Command::Eval { args } => {
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
