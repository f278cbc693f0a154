//! The `weir` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weir: a Kubernetes ingress controller with its own data plane.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile a directory of manifests and print listeners, routes, clusters and every
    /// diagnostic; exit 0 when valid, 1 when something was rejected, 2 when unreadable.
    Validate(weir::validate::ValidateArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let status = match &cli.command {
        Command::Validate(args) => weir::validate::run(args),
    };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
