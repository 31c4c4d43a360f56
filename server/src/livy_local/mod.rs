//! `spool livy-local` (placeholder until the endpoint lands).

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 8998)]
    pub port: u16,
}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
