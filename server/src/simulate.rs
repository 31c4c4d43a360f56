//! `spool simulate` (placeholder until the simulator lands).

#[derive(clap::Args)]
pub struct Args {
    pub file: std::path::PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
