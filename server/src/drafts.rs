//! Drafts: a pipeline's text the server keeps while it has errors ("Save draft" in the
//! browser). The pipelines folder only ever gets files that validate, because runs and
//! schedules read it; a draft lives in the history database instead, one per file, until the
//! file is saved or the draft discarded. So edits with errors survive a closed tab, another
//! browser and another machine, and nothing that runs ever reads them.

use crate::history::History;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Drafts kept at most (a new one beyond is refused; one replacing a kept draft is not).
pub const MAX_DRAFTS: i64 = 1_000;
/// The longest draft text, in bytes (the browser keeps no larger one either).
pub const MAX_DRAFT_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub text: String,
    /// The version of the file the draft was made on (its `ETag`), `None` for a new file.
    pub etag: Option<String>,
    pub saved_ms: i64,
    /// The name of the token that saved it (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_by: Option<String>,
}

/// Why a draft was not kept.
#[derive(Debug, thiserror::Error)]
pub enum DraftRefused {
    #[error("a draft holds at most {MAX_DRAFT_BYTES} bytes")]
    TooLarge,
    #[error("the server keeps at most {MAX_DRAFTS} drafts: save or discard some first")]
    TooMany,
}

impl History {
    pub fn draft(&self, file: &str) -> anyhow::Result<Option<Draft>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT text, etag, saved_ms, saved_by FROM drafts WHERE file = ?1",
                params![file],
                |r| {
                    Ok(Draft {
                        text: r.get(0)?,
                        etag: r.get(1)?,
                        saved_ms: r.get(2)?,
                        saved_by: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Keeps `draft` as `file`'s, replacing the one kept.
    pub fn save_draft(
        &self,
        file: &str,
        draft: &Draft,
    ) -> anyhow::Result<Result<(), DraftRefused>> {
        if draft.text.len() > MAX_DRAFT_BYTES {
            return Ok(Err(DraftRefused::TooLarge));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let kept: i64 = tx.query_row("SELECT count(*) FROM drafts", [], |r| r.get(0))?;
        let replaces: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM drafts WHERE file = ?1)",
            params![file],
            |r| r.get(0),
        )?;
        if kept >= MAX_DRAFTS && !replaces {
            return Ok(Err(DraftRefused::TooMany));
        }
        tx.execute(
            "INSERT INTO drafts (file, text, etag, saved_ms, saved_by) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(file) DO UPDATE SET text = excluded.text, etag = excluded.etag, \
             saved_ms = excluded.saved_ms, saved_by = excluded.saved_by",
            params![file, draft.text, draft.etag, draft.saved_ms, draft.saved_by],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }

    /// Forgets `file`'s draft; whether there was one.
    pub fn delete_draft(&self, file: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM drafts WHERE file = ?1", params![file])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(text: &str, at: i64) -> Draft {
        Draft {
            text: text.into(),
            etag: Some("\"v1\"".into()),
            saved_ms: at,
            saved_by: Some("ci".into()),
        }
    }

    #[test]
    fn a_draft_is_kept_per_file_replaced_by_the_next_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path()).unwrap();
        assert_eq!(history.draft("a.toml").unwrap(), None);
        history
            .save_draft("a.toml", &draft("x =", 1))
            .unwrap()
            .unwrap();
        history
            .save_draft("a.toml", &draft("x = [", 2))
            .unwrap()
            .unwrap();
        assert_eq!(history.draft("a.toml").unwrap(), Some(draft("x = [", 2)));
        // Kept across a restart.
        drop(history);
        let history = History::open(dir.path()).unwrap();
        assert_eq!(history.draft("a.toml").unwrap(), Some(draft("x = [", 2)));
        assert!(history.delete_draft("a.toml").unwrap());
        assert!(!history.delete_draft("a.toml").unwrap());
        assert_eq!(history.draft("a.toml").unwrap(), None);
    }

    #[test]
    fn drafts_are_bounded_in_size_and_number() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path()).unwrap();
        let big = "#".repeat(MAX_DRAFT_BYTES + 1);
        assert!(matches!(
            history.save_draft("a.toml", &draft(&big, 1)).unwrap(),
            Err(DraftRefused::TooLarge)
        ));
        for n in 0..MAX_DRAFTS {
            history
                .save_draft(&format!("p{n}.toml"), &draft("x", n))
                .unwrap()
                .unwrap();
        }
        assert!(matches!(
            history.save_draft("one_more.toml", &draft("x", 0)).unwrap(),
            Err(DraftRefused::TooMany)
        ));
        history
            .save_draft("p0.toml", &draft("replaced", 9))
            .unwrap()
            .expect("a kept draft can be replaced at the limit");
    }
}
