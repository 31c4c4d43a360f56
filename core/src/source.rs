//! The environment the core reads pipeline files through (typst's `World`, in small): the
//! server reads the disk, the browser holds the files it fetched. Paths are relative to the
//! root pipeline's folder, `/`-separated and normalised by [`resolve`].

use std::collections::BTreeMap;

pub trait Sources {
    /// The text of a file, or a message saying why it cannot be read.
    fn read(&self, path: &str) -> Result<String, String>;
    fn exists(&self, path: &str) -> bool;
}

/// Files held in memory (the browser, tests).
#[derive(Debug, Clone, Default)]
pub struct MemorySources(pub BTreeMap<String, String>);

impl MemorySources {
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.0.insert(path.to_string(), text.to_string());
        self
    }
}

impl Sources for MemorySources {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file".to_string())
    }

    fn exists(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Absolute,
    Escapes,
    Empty,
}

/// The folder part of a normalised path (`""` for the root folder).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Joins `rel` to the folder `base` and normalises it; it must stay inside the root folder.
pub fn resolve(base: &str, rel: &str) -> Result<String, PathError> {
    let rel = rel.replace('\\', "/");
    if rel.trim().is_empty() {
        return Err(PathError::Empty);
    }
    let bytes = rel.as_bytes();
    if rel.starts_with('/') || (bytes.len() > 1 && bytes[1] == b':') || rel.starts_with('~') {
        return Err(PathError::Absolute);
    }
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::Escapes);
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        assert_eq!(resolve("sub", "../nb/a.py"), Ok("nb/a.py".into()));
        assert_eq!(resolve("", "./a/./b.py"), Ok("a/b.py".into()));
        assert_eq!(resolve("", "../a.py"), Err(PathError::Escapes));
        assert_eq!(resolve("x", "../../a.py"), Err(PathError::Escapes));
        assert_eq!(resolve("", "/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(resolve("", "C:\\x.py"), Err(PathError::Absolute));
    }
}
