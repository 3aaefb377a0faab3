//! The `healthgate` command line.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use healthgate::config::{self, Config, ConfigError};
use healthgate::telemetry::log::{self, LogFormat};

/// A sidecar health gateway: probes a service and what it depends on, and
/// serves aggregated liveness, readiness and startup verdicts.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level or filter (e.g. `debug`, `healthgate=debug`); overrides RUST_LOG.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArg {
    /// Config file (.toml, .yaml or .yml).
    #[arg(long, short, env = "HEALTHGATE_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

/// Where the running gateway's admin listener is.
#[derive(Args)]
struct AdminArgs {
    /// The admin listener's URL (default: `server.admin_listen` of the config,
    /// its certificate not verified: it is this host's own listener).
    #[arg(long, env = "HEALTHGATE_ADMIN_URL", value_name = "URL")]
    admin_url: Option<String>,
    /// PEM CA certificates to verify an https --admin-url with, besides the built-in roots.
    #[arg(long, value_name = "FILE", requires = "admin_url")]
    ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the checks and serve the verdicts until SIGTERM or SIGINT.
    Run(ConfigArg),
    /// Run every (or each named) check once, ignoring thresholds.
    /// With --remote, the running gateway runs them now and records the
    /// results as its scheduled runs (thresholds apply there).
    /// Exit 0 when every critical check passes, 1 when one fails, 2 on a config error.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Run only this check (repeatable).
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
        /// Ask the running gateway (its admin listener, with the admin token
        /// of the config) to run the checks instead of running them here.
        #[arg(long)]
        remote: bool,
        /// With --remote: run this verdict group's checks.
        #[arg(long, requires = "remote", conflicts_with = "checks", value_parser = ["liveness", "readiness", "startup"])]
        group: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Follow the running gateway's events (status and verdict changes,
    /// drains, reloads), one line each, reconnecting where it left off.
    Watch {
        #[command(flatten)]
        config: ConfigArg,
        /// Print each event's JSON (version 1) instead of a line of text.
        #[arg(long)]
        json: bool,
        /// Start after this event id (replaying what the gateway still holds).
        #[arg(long, value_name = "ID")]
        since: Option<u64>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Ask the running gateway for one of its verdicts over its own listener
    /// (`server.listen`, TLS when `server.tls` is set); exit 0 on 200, 1
    /// otherwise. For a container `HEALTHCHECK` in an image without curl.
    Get {
        #[command(flatten)]
        config: ConfigArg,
        /// The endpoint.
        #[arg(default_value = "/livez", value_parser = ["/livez", "/readyz", "/startupz", "/health"])]
        path: String,
    },
    /// Print what the state store holds: each check's runs by hour and its
    /// status changes. Reads the store's file (`state.dir`), whether or not
    /// the gateway is running (then up to its last batch). Exit 2 when the
    /// config is invalid or there is no store.
    History {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this check (repeatable). Default: every configured check.
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
        /// How far back.
        #[arg(long, default_value = "24h")]
        last: humantime::Duration,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Load and validate the config; exit 2 listing every problem.
    Validate(ConfigArg),
    /// Run the gateway beside a toy upstream whose health can be toggled.
    Demo {
        #[command(flatten)]
        config: ConfigArg,
        /// Where the toy upstream listens.
        #[arg(long, default_value = "127.0.0.1:8000")]
        upstream: SocketAddr,
    },
}

const EXIT_CHECK_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = log::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("healthgate: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let files = healthgate::server::conns::raise_fd_limit();
    tracing::debug!(open_files = ?files, "open file limit");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("healthgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(dispatch(cli.command));
    // A telemetry flush still blocked past its budget must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::History {
            config,
            checks,
            last,
            json,
        } => {
            let loaded = match load(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let Some(dir) = &loaded.state.dir else {
                eprintln!(
                    "healthgate: no history: state.dir is not set in {}",
                    config.config.display()
                );
                return ExitCode::from(EXIT_CONFIG);
            };
            let checks = if checks.is_empty() {
                loaded
                    .checks
                    .iter()
                    .chain(&loaded.disabled)
                    .map(|c| c.name.to_string())
                    .collect()
            } else {
                checks
            };
            match healthgate::state::report::history(dir, &checks, *last, json) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("healthgate: {error}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Validate(arg) => match load(&arg) {
            Ok(config) => {
                println!(
                    "{}: ok ({} checks)",
                    arg.config.display(),
                    config.checks.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Check {
            config,
            json,
            checks,
            remote: true,
            group,
            admin,
        } => {
            let loaded = match load(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let rows = match remote(&loaded, &admin) {
                Ok(gateway) => gateway.run(&checks, group.as_deref()).await,
                Err(message) => Err(message),
            };
            match rows {
                Ok(rows) => {
                    print_rows(&rows, json);
                    exit_code(&rows)
                }
                Err(message) => {
                    eprintln!("healthgate: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Watch {
            config,
            json,
            since,
            admin,
        } => {
            let loaded = match load(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let watched = match remote(&loaded, &admin) {
                Ok(gateway) => gateway.watch(json, since, &mut std::io::stdout()).await,
                Err(message) => Err(message),
            };
            match watched {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("healthgate: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check {
            config,
            json,
            checks,
            ..
        } => {
            let loaded = match load(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let selected = match healthgate::check::select(loaded.checks, &checks) {
                Ok(selected) => selected,
                Err(message) => {
                    eprintln!("healthgate: {message}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let rows = healthgate::check::run_once(&selected).await;
            print_rows(&rows, json);
            exit_code(&rows)
        }
        Command::Get { config, path } => {
            let loaded = match load(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            match healthgate::check::own_endpoint(&loaded.server, &path) {
                Ok(check) => {
                    let rows = healthgate::check::run_once(&[check]).await;
                    print!("{}", healthgate::check::table(&rows));
                    exit_code(&rows)
                }
                Err(message) => {
                    eprintln!("healthgate: {message}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Run(arg) => match load_content(&arg) {
            Ok((content, config)) => serve(&arg, content, config).await,
            Err(code) => code,
        },
        Command::Demo { config, upstream } => {
            let (content, loaded) = match load_content(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let listener = match healthgate::server::bind("--upstream", upstream).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::error!("demo upstream: {e}");
                    return ExitCode::FAILURE;
                }
            };
            tokio::spawn(healthgate::demo::serve_upstream(listener));
            tracing::info!(
                upstream = %upstream,
                "demo upstream up; watch `curl -s localhost:{}/readyz?verbose`, flip it with `curl -XPOST {upstream}/toggle`",
                loaded.server.listen.port()
            );
            serve(&config, content, loaded).await
        }
    }
}

fn print_rows(rows: &[healthgate::check::Row], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
    } else {
        print!("{}", healthgate::check::table(rows));
    }
}

/// The running gateway of `config`, or of `--admin-url`.
fn remote(config: &Config, admin: &AdminArgs) -> Result<healthgate::remote::Admin, String> {
    healthgate::remote::Admin::new(
        &config.server,
        admin.admin_url.as_deref(),
        admin.ca_file.as_deref(),
    )
}

/// 0 when every critical check passed, else 1.
fn exit_code(rows: &[healthgate::check::Row]) -> ExitCode {
    if healthgate::check::any_critical_failed(rows) {
        ExitCode::from(EXIT_CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

async fn serve(arg: &ConfigArg, content: config::Content, config: Config) -> ExitCode {
    match healthgate::run(&arg.config, content, config, signals()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    load_content(arg).map(|(_, config)| config)
}

/// The config and what its file held (the reloader compares later content with it).
fn load_content(arg: &ConfigArg) -> Result<(config::Content, Config), ExitCode> {
    let loaded = config::load(&arg.config);
    match loaded.config {
        Ok(config) => Ok((loaded.content, config)),
        Err(e) => {
            report(&e);
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// The problems go to stderr as plain lines, whatever the log format: a person reads them.
fn report(error: &ConfigError) {
    eprintln!("healthgate: invalid config: {error}");
}

/// SIGTERM and SIGINT as they arrive (the first drains, the second exits).
/// The handlers are installed here, before the caller announces it serves: a
/// signal right after start must still stop it cleanly, not by the default action.
fn signals() -> healthgate::Signals {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                loop {
                    let name = tokio::select! {
                        Some(()) = term.recv() => "SIGTERM",
                        Some(()) = int.recv() => "SIGINT",
                        else => return,
                    };
                    if tx.send(name).await.is_err() {
                        return;
                    }
                }
            });
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot listen for SIGTERM/SIGINT: {e}");
            // Keep the sender alive: the gateway runs until killed.
            tokio::spawn(async move {
                let _tx = tx;
                std::future::pending::<()>().await;
            });
        }
    }
    rx
}
