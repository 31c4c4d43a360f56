//! `spool import` / `spool export` (placeholder until the importers land).

#[derive(clap::Args)]
pub struct ImportArgs {
    pub kind: String,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    pub kind: String,
}

pub fn import(_args: ImportArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}

pub fn export(_args: ExportArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
