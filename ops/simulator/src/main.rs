//! `rakuda-sim`: publish RAKUDA events to Redis by hand, as realistic traffic, or as latency
//! probes. Everything it does lives in the library; see [`rakuda_simulator::commands`].

use std::process::ExitCode;

use clap::Parser;
use rakuda_simulator::cli::Cli;
use rakuda_simulator::commands;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rakuda-sim: {error}");
            ExitCode::FAILURE
        }
    }
}
