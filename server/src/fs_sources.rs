//! Pipeline files on disk, seen through `spool_core::source::Sources`: confined to one folder
//! (symlinks included), regular files only, size-limited. Reads, writes and listings apply the
//! same checks on the real file system. Everything here blocks: async callers run it on
//! `tokio::task::spawn_blocking`.

use spool_core::model::MAX_METADATA_BYTES;
use spool_core::notebook::{self, Format, MAX_NOTEBOOK_BYTES};
use spool_core::source::Sources;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct DiskSources {
    root: PathBuf,
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The caller's fault: a name that cannot be a pipeline file here.
    #[error("{0}")]
    Refused(String),
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
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

    /// Reads a regular file of at most `limit` bytes. The type is checked on the opened file
    /// (opened without blocking and without following a last-moment link), so a FIFO or a
    /// device never stalls the caller.
    pub fn read_limited(&self, rel: &str, limit: u64) -> Result<Vec<u8>, String> {
        let real = self.locate(rel)?;
        let mut file = open_no_follow(&real).map_err(|e| e.to_string())?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("it is not a regular file".into());
        }
        if meta.len() > limit {
            return Err(format!(
                "the file is {} bytes, over the {} MiB limit",
                meta.len(),
                limit / (1024 * 1024)
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.by_ref()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > limit {
            return Err(format!("the file grew over the {limit} bytes limit"));
        }
        Ok(bytes)
    }

    /// Files under the folder whose names end with one of `exts`, relative and `/`-separated,
    /// sorted: regular files only, hidden names and `target` skipped, links followed only
    /// while they stay inside the folder, `max_depth` folders deep, at most `max_files`.
    pub fn list(&self, exts: &[&str], max_depth: usize, max_files: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.clone(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with('.') || name == "target" {
                    continue;
                }
                let path = entry.path();
                let Ok(real) = path.canonicalize() else {
                    continue;
                };
                if !real.starts_with(&self.root) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&real) else {
                    continue;
                };
                if meta.is_dir() && depth < max_depth {
                    stack.push((path, depth + 1));
                } else if meta.is_file()
                    && exts.iter().any(|e| name.ends_with(e))
                    && out.len() < max_files
                {
                    if let Ok(rel) = path.strip_prefix(&self.root) {
                        let rel: Vec<String> = rel
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().to_string())
                            .collect();
                        out.push(rel.join("/"));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Writes `rel` (already lexically confined, `/`-separated) atomically: missing folders
    /// are created inside the root, existing ones must resolve inside it (a link to elsewhere
    /// is refused), the text goes to a uniquely named temp file opened without following
    /// links, is flushed, then renamed over the target. Readers see the old file or the new
    /// one; concurrent writers each win whole.
    pub fn write(&self, rel: &str, text: &str) -> Result<(), WriteError> {
        use std::io::Write;
        let (dirs, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let io = |source| WriteError::Io {
            path: rel.to_string(),
            source,
        };
        let mut dir = self.root.clone();
        for part in dirs.split('/').filter(|p| !p.is_empty()) {
            dir.push(part);
            match std::fs::create_dir(&dir) {
                // Existing (maybe a link, maybe made by another writer just now): checked below.
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
                _ => {}
            }
            let real = dir.canonicalize().map_err(|e| {
                WriteError::Refused(format!("`{rel}`: `{part}` leads nowhere ({e})"))
            })?;
            if !real.starts_with(&self.root) {
                return Err(WriteError::Refused(format!(
                    "`{rel}` would be written through a link that leaves the pipelines folder"
                )));
            }
            if !real.is_dir() {
                return Err(WriteError::Refused(format!(
                    "`{rel}`: `{part}` is a file, not a folder"
                )));
            }
            dir = real;
        }
        let target = dir.join(name);
        if let Ok(meta) = std::fs::symlink_metadata(&target) {
            if meta.is_dir() {
                return Err(WriteError::Refused(format!("`{rel}` is a folder")));
            }
        }
        let tmp = dir.join(temp_name(name));
        let result = (|| -> std::io::Result<()> {
            let mut f = create_new_no_follow(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }
}

/// `.{name}.{pid}.{n}.tmp`, unique within this process and across processes.
fn temp_name(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(unix)]
fn create_new_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn create_new_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Why a file cannot be read.
#[derive(Debug)]
pub enum ReadError {
    /// Over the limit of its kind: notebooks (by extension) or metadata files.
    TooLarge(String),
    Unreadable(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge(why) | ReadError::Unreadable(why) => f.write_str(why),
        }
    }
}

impl DiskSources {
    /// The text of `path`, within the limit of its kind; being too large is its own error.
    pub fn read_checked(&self, path: &str) -> Result<String, ReadError> {
        let is_notebook = Format::from_path(path).is_some();
        let limit = if is_notebook {
            MAX_NOTEBOOK_BYTES
        } else {
            MAX_METADATA_BYTES
        } as u64;
        // `stat` does not block, whatever the file is; `read_limited` checks the rest.
        let len = self
            .locate(path)
            .ok()
            .and_then(|real| std::fs::metadata(real).ok())
            .filter(std::fs::Metadata::is_file)
            .map_or(0, |meta| meta.len());
        if len > limit {
            return Err(ReadError::TooLarge(if is_notebook {
                notebook::too_large(len)
            } else {
                format!(
                    "the file is {len} bytes, over the {} MiB limit for metadata files",
                    MAX_METADATA_BYTES / (1024 * 1024)
                )
            }));
        }
        let bytes = self
            .read_limited(path, limit)
            .map_err(ReadError::Unreadable)?;
        String::from_utf8(bytes)
            .map_err(|_| ReadError::Unreadable("the file is not UTF-8 text".into()))
    }
}

impl Sources for DiskSources {
    fn read(&self, path: &str) -> Result<String, String> {
        self.read_checked(path).map_err(|e| e.to_string())
    }

    fn exists(&self, path: &str) -> bool {
        self.locate(path).is_ok_and(|p| p.is_file())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, tempfile::TempDir, DiskSources) {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.toml"), "name = \"a\"\n").unwrap();
        std::fs::write(elsewhere.path().join("secret.toml"), "name = \"s\"\n").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("linkout")).unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(root.path().join("sub"), root.path().join("linkin")).unwrap();
        let src = DiskSources::new(root.path()).unwrap();
        (root, elsewhere, src)
    }

    #[test]
    fn writes_through_a_link_leaving_the_folder_are_refused_and_write_nothing() {
        let (_root, elsewhere, src) = folder();
        let refused = src.write("linkout/escaped.toml", "x = 1\n");
        assert!(
            matches!(refused, Err(WriteError::Refused(_))),
            "{refused:?}"
        );
        let refused = src.write("linkout/secret.toml", "x = 1\n");
        assert!(
            matches!(refused, Err(WriteError::Refused(_))),
            "{refused:?}"
        );
        assert!(!elsewhere.path().join("escaped.toml").exists());
        assert_eq!(
            std::fs::read_to_string(elsewhere.path().join("secret.toml")).unwrap(),
            "name = \"s\"\n"
        );
        // Links that stay inside, and new folders, are fine.
        src.write("linkin/b.toml", "b = 1\n").unwrap();
        src.write("new/deeper/c.toml", "c = 1\n").unwrap();
        assert_eq!(src.read("sub/b.toml").unwrap(), "b = 1\n");
        assert_eq!(src.read("new/deeper/c.toml").unwrap(), "c = 1\n");
    }

    #[test]
    fn listing_skips_links_leaving_the_folder_and_non_regular_files() {
        let (root, _elsewhere, src) = folder();
        std::fs::write(root.path().join("sub/in.toml"), "").unwrap();
        let fifo = root.path().join("x.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert_eq!(
            src.list(&[".toml"], 4, 100),
            vec!["a.toml", "linkin/in.toml", "sub/in.toml"]
        );
        // A FIFO is refused at once instead of blocking the reader.
        let read = src.read("x.toml");
        assert!(read.unwrap_err().contains("not a regular file"));
    }

    #[test]
    fn notebooks_have_their_own_limit_and_error() {
        let (root, _elsewhere, src) = folder();
        // Over the metadata limit, within the notebook limit: a notebook reads.
        let big = "x = 1\n".repeat(MAX_METADATA_BYTES / 6 + 1);
        std::fs::write(root.path().join("big.py"), &big).unwrap();
        assert_eq!(src.read_checked("big.py").unwrap().len(), big.len());
        std::fs::write(root.path().join("big.toml"), &big).unwrap();
        assert!(matches!(
            src.read_checked("big.toml"),
            Err(ReadError::TooLarge(_))
        ));
        let huge = std::fs::File::create(root.path().join("huge.ipynb")).unwrap();
        huge.set_len(MAX_NOTEBOOK_BYTES as u64 + 1).unwrap();
        match src.read_checked("huge.ipynb") {
            Err(ReadError::TooLarge(why)) => assert!(why.contains("20 MiB"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            src.read_checked("missing.py"),
            Err(ReadError::Unreadable(_))
        ));
    }

    #[test]
    fn concurrent_writes_of_one_file_all_succeed_and_leave_one_whole_text() {
        let (root, _elsewhere, src) = folder();
        let src = std::sync::Arc::new(src);
        let texts: Vec<String> = (0..16).map(|i| format!("n = {i}\n").repeat(100)).collect();
        let writers: Vec<_> = texts
            .iter()
            .cloned()
            .map(|t| {
                let src = src.clone();
                std::thread::spawn(move || src.write("same.toml", &t))
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        let now = std::fs::read_to_string(root.path().join("same.toml")).unwrap();
        assert!(texts.contains(&now));
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
