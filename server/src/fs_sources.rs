//! Pipeline files on disk, seen through `spool_core::source::Sources`: confined to one folder
//! (symlinks included) and size-limited.

use spool_core::model::MAX_METADATA_BYTES;
use spool_core::source::Sources;
use std::path::{Path, PathBuf};

pub struct DiskSources {
    root: PathBuf,
}

impl DiskSources {
    /// Files under `root`, which must exist.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(DiskSources {
            root: root.canonicalize()?,
        })
    }

    /// Splits a pipeline file path into the sources of its folder and its name inside them.
    pub fn for_file(file: &Path) -> anyhow::Result<(Self, String)> {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow::anyhow!("`{}` is not a file name", file.display()))?;
        let sources = DiskSources::new(dir)
            .map_err(|e| anyhow::anyhow!("cannot open folder `{}`: {e}", dir.display()))?;
        Ok((sources, name.to_string()))
    }

    /// The real path of `rel`, or why it may not be used.
    fn locate(&self, rel: &str) -> Result<PathBuf, String> {
        let joined = self.root.join(rel);
        let real = joined.canonicalize().map_err(|e| e.to_string())?;
        if !real.starts_with(&self.root) {
            return Err("it resolves (through a link) outside the pipeline's folder".into());
        }
        Ok(real)
    }
}

impl Sources for DiskSources {
    fn read(&self, path: &str) -> Result<String, String> {
        let real = self.locate(path)?;
        let len = std::fs::metadata(&real).map_err(|e| e.to_string())?.len();
        if len > MAX_METADATA_BYTES as u64 {
            return Err(format!(
                "the file is {len} bytes, over the {} MiB limit for metadata files",
                MAX_METADATA_BYTES / (1024 * 1024)
            ));
        }
        std::fs::read_to_string(&real).map_err(|e| e.to_string())
    }

    fn exists(&self, path: &str) -> bool {
        self.locate(path).is_ok_and(|p| p.is_file())
    }
}
