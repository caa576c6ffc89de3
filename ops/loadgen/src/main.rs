//! `rakuda-loadgen`: subscribers, a publisher, and the benchmark scenarios behind `just bench`.
//! Everything it does lives in the library; see [`rakuda_loadgen::commands`].

use std::process::ExitCode;

use clap::Parser;
use rakuda_loadgen::cli::Cli;
use rakuda_loadgen::commands;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // First of all: every subcommand opens connections, each a file descriptor.
    commands::raise_fd_limit();
    let cli = Cli::parse();
    match commands::run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rakuda-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}
