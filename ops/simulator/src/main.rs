//! `rakuda-sim`: publish RAKUDA events to Redis by hand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rakuda-sim",
    version,
    about = "Publishes RAKUDA events to Redis as the workers do"
)]
struct Cli {
    /// Redis server the workers (and the bridge) use.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    /// Prefix of the channels.
    #[arg(long, env = "REDIS_CHANNEL_PREFIX", default_value = rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX, global = true)]
    redis_channel_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish one sample event.
    Publish {
        /// inventory | orders | pricing | listings
        channel: String,
        /// The entity id (payload.id).
        #[arg(long, default_value = "prod_123")]
        id: String,
        /// created | updated | deleted
        #[arg(long, default_value = "updated")]
        action: String,
        /// payload.data as a JSON object; a plausible sample when omitted.
        #[arg(long)]
        data: Option<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rakuda-sim: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), rakuda_simulator::Error> {
    match cli.command {
        Command::Publish {
            channel,
            id,
            action,
            data,
        } => {
            let (channel, event) =
                rakuda_simulator::sample_event(&channel, &id, &action, data.as_deref())?;
            let mut redis = redis::Client::open(cli.redis_url.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let (json, receivers) =
                rakuda_simulator::publish(&mut redis, &cli.redis_channel_prefix, channel, &event)
                    .await?;
            eprintln!(
                "published on {} ({receivers} subscriber(s){}):",
                channel.redis_channel(&cli.redis_channel_prefix),
                if receivers == 0 {
                    "; is the bridge running?"
                } else {
                    ""
                }
            );
            #[allow(clippy::print_stdout)]
            {
                println!("{json}");
            }
            Ok(())
        }
    }
}
