//! `switchyard sim`: a FreeSWITCH stand-in on a TCP port, for the lab and for anyone's ESL tools.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use switchyard::sim::{SimConfig, Simulator};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8021")]
    listen: SocketAddr,
    /// The ESL password clients must send.
    #[arg(
        long,
        env = "SWITCHYARD_SIM_PASSWORD",
        default_value = "ClueCon",
        hide_env_values = true
    )]
    password: String,
    /// Seconds between HEARTBEAT events; 0 turns them off.
    #[arg(long, default_value_t = 20)]
    heartbeat_secs: u64,
    /// How long URLs, streams and non-WAV files play, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    play_ms: u64,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let config = SimConfig {
        listen: args.listen,
        password: args.password,
        heartbeat: (args.heartbeat_secs > 0).then(|| Duration::from_secs(args.heartbeat_secs)),
        default_play_duration: Duration::from_millis(args.play_ms),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await?;
    tracing::info!(addr = %sim.addr(), core_uuid = %sim.core_uuid(), "FreeSWITCH simulator listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
