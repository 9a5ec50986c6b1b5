//! `sansmqtt`: publish, subscribe and benchmark MQTT brokers from the shell, on `sansmqtt-tokio`.
//!
//! `sansmqtt pub` and `sansmqtt sub` take the options mosquitto_pub / mosquitto_sub and
//! amqtt_pub / amqtt_sub users know (`-h -p -t -m -q -r -l -C -W -v`, `--url`, `--cafile`,
//! ...); `sansmqtt bench` opens N publishing and M subscribing connections and measures rate and
//! publish-to-delivery latency. Errors are one line on stderr and a documented exit status
//! (`sansmqtt --help`).
#![forbid(unsafe_code)]

mod args;
mod bench;
mod connect;
mod error;
mod format;
mod publish;
mod subscribe;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use args::{Cli, Command};
use error::{CliError, exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let debug = match &cli.command {
        Command::Pub(a) => a.conn.debug,
        Command::Sub(a) => a.conn.debug,
        Command::Bench(a) => a.conn.debug,
    };
    init_tracing(debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(match &cli.command {
            // One thread drives the connection while the other writes to a slow stdout.
            Command::Pub(_) | Command::Sub(_) => 2,
            Command::Bench(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
        })
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            report(&format!("cannot start the async runtime: {err}"));
            return ExitCode::from(exit::FAILURE);
        }
    };
    let result: Result<(), CliError> = runtime.block_on(async {
        match cli.command {
            Command::Pub(args) => publish::run(args).await,
            Command::Sub(args) => subscribe::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    // Client driver tasks still winding down must not hold up the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            report(&error_chain(&err));
            ExitCode::from(err.exit_code())
        }
    }
}

/// Help and version go to stdout with status 0 (clap's way); a usage error becomes one line on
/// stderr, like every other error, with status 2.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(if err.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        });
    }
    let rendered = err.render().to_string();
    // clap's message is the paragraph before its usage block.
    let message = rendered
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    report(&format!("{message} (see --help)"));
    ExitCode::from(exit::USAGE)
}

/// An error and its causes on one line. The client's errors keep their causes in `source()`
/// rather than in their message; a cause this message already shows is not repeated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// One line on stderr, prefixed with the program name.
fn report(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "mqtt: {message}");
}

/// `-d`: the client's tracing on stderr (`-d` debug, `-dd` trace); `RUST_LOG` refines it.
fn init_tracing(debug: u8) {
    if debug == 0 {
        return;
    }
    let level = if debug == 1 { "debug" } else { "trace" };
    let default = format!(
        "sansmqtt={level},sansmqtt_tokio={level},sansmqtt_client={level},sansmqtt_session={level},warn"
    );
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
