//! Secret parameter values: a reference written in the pipeline file (`{ secret = "env:NAME" }`,
//! `"file:/run/secrets/db"`, `"command:az keyvault secret show …"`), kept as a reference
//! everywhere Spool stores or shows values, resolved by the server only when an attempt starts,
//! and masked (`***`) in whatever comes back from the notebook.
//!
//! Core owns the rules every side shares: what a reference looks like, where it may be written,
//! and what masking replaces. Reading environment variables, files and commands is the server's.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The key of the one-entry object that stands for a secret in parameter values (the TOML
/// `{ secret = "…" }` becomes `{"$secret": "…"}`): no TOML bare key and no parameter name starts
/// with `$`, so values given for a run cannot be mistaken for one, and are refused when they
/// try.
pub const MARKER: &str = "$secret";

/// What masking writes instead of a secret.
pub const MASK: &str = "***";

/// A secret shorter than this is refused when resolved: masking it would blank out ordinary
/// text (a two-letter password would turn every "ab" of the output into `***`) and still leave
/// it guessable.
pub const MIN_LEN: usize = 4;

/// The largest secret a file or command may give (keys and certificates fit).
pub const MAX_BYTES: usize = 64 * 1024;

/// The longest reference text (a command line included).
pub const MAX_REFERENCE_CHARS: usize = 4096;

/// The secrets masking knows in one run, at most; resolving more fails the attempt.
pub const MAX_PER_RUN: usize = 256;

/// Where a secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretKind {
    /// An environment variable of the Spool process.
    Env,
    /// The content of a file (an absolute path), such as a mounted Docker/Kubernetes secret.
    File,
    /// The standard output of a shell command, for vaults with a CLI.
    Command,
}

impl SecretKind {
    pub const ALL: [SecretKind; 3] = [SecretKind::Env, SecretKind::File, SecretKind::Command];

    pub fn name(self) -> &'static str {
        match self {
            SecretKind::Env => "env",
            SecretKind::File => "file",
            SecretKind::Command => "command",
        }
    }

    pub fn parse(name: &str) -> Option<SecretKind> {
        SecretKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A checked reference: its kind and what follows `kind:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef<'a> {
    pub kind: SecretKind,
    pub target: &'a str,
}

/// Parses the text of a reference (`env:DB_PASSWORD`); `Err` says what is wrong with it.
pub fn parse(text: &str) -> Result<SecretRef<'_>, String> {
    if text.chars().count() > MAX_REFERENCE_CHARS {
        return Err(format!(
            "a secret reference is at most {MAX_REFERENCE_CHARS} characters"
        ));
    }
    let kinds = || {
        SecretKind::ALL
            .iter()
            .map(|k| format!("`{}:…`", k.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((kind, target)) = text.split_once(':') else {
        return Err(format!("a secret reference is one of {}", kinds()));
    };
    let Some(kind) = SecretKind::parse(kind) else {
        return Err(format!(
            "unknown secret source `{}`: expected one of {}",
            crate::diag::escape_controls(kind),
            kinds()
        ));
    };
    match kind {
        SecretKind::Env => {
            let mut chars = target.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(
                    "`env:` names an environment variable: letters, digits and `_`, not \
                     starting with a digit"
                        .into(),
                );
            }
            if target.starts_with("SPOOL_") {
                return Err(
                    "`SPOOL_…` variables are Spool's own settings (its API tokens among them) \
                     and are never handed to notebooks"
                        .into(),
                );
            }
        }
        SecretKind::File => {
            if !target.starts_with('/') || target.contains('\0') {
                return Err("`file:` takes an absolute path (`file:/run/secrets/db`)".into());
            }
        }
        SecretKind::Command => {
            if target.trim().is_empty() || target.contains('\0') {
                return Err("`command:` takes the command line that prints the secret".into());
            }
        }
    }
    Ok(SecretRef { kind, target })
}

/// The reference text when `value` is a secret (`{"$secret": "…"}`).
pub fn reference(value: &Value) -> Option<&str> {
    match value {
        Value::Object(fields) if fields.len() == 1 => fields.get(MARKER)?.as_str(),
        _ => None,
    }
}

/// The texts of the secret references in `value` (as deep as values nest).
pub fn references(value: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![value];
    // Values are bounded on parse; the walk keeps its own stack all the same.
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(fields) => match reference(v) {
                Some(text) => {
                    found.insert(text.to_string());
                }
                None => stack.extend(fields.values()),
            },
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// Whether `value` holds a secret reference anywhere, or an object that tries to be one.
pub fn contains_reference(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(fields) => {
                if fields.contains_key(MARKER) {
                    return true;
                }
                stack.extend(fields.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    false
}

/// `params` with every secret reference replaced by what `resolve` gives for its text (a value
/// nested in arrays and tables included).
pub fn resolve_params(
    params: &Map<String, Value>,
    resolve: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Map<String, Value>, String> {
    params
        .iter()
        .map(|(k, v)| Ok((k.clone(), resolve_value(v, resolve, 0)?)))
        .collect()
}

fn resolve_value(
    value: &Value,
    resolve: &mut dyn FnMut(&str) -> Result<String, String>,
    depth: usize,
) -> Result<Value, String> {
    if let Some(text) = reference(value) {
        return resolve(text).map(Value::String);
    }
    if depth >= crate::template::MAX_VALUE_DEPTH {
        return Ok(value.clone());
    }
    Ok(match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve_value(v, resolve, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), resolve_value(v, resolve, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        _ => value.clone(),
    })
}

/// The secrets of one run, and the text masking replaces for each: the secret itself, the way
/// JSON escapes it, and each line of a secret written over several lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Masker {
    secrets: BTreeSet<String>,
    /// Longest first, so that a secret containing another is replaced whole.
    patterns: Vec<String>,
}

impl Masker {
    /// Adds a resolved secret; `Err` when it is too short to mask or one too many.
    pub fn add(&mut self, secret: &str) -> Result<(), String> {
        if secret.chars().count() < MIN_LEN {
            return Err(format!(
                "the secret is shorter than {MIN_LEN} characters, too short to be masked in \
                 output"
            ));
        }
        if self.secrets.contains(secret) {
            return Ok(());
        }
        if self.secrets.len() >= MAX_PER_RUN {
            return Err(format!(
                "a run uses at most {MAX_PER_RUN} different secrets"
            ));
        }
        self.secrets.insert(secret.to_string());
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped
            .strip_prefix('"')
            .and_then(|e| e.strip_suffix('"'))
            .unwrap_or(secret);
        let mut patterns: BTreeSet<String> = self.patterns.drain(..).collect();
        patterns.insert(secret.to_string());
        patterns.insert(escaped.to_string());
        patterns.extend(
            secret
                .lines()
                .map(str::trim)
                .filter(|l| l.chars().count() >= MIN_LEN)
                .map(str::to_string),
        );
        self.patterns = patterns.into_iter().collect();
        self.patterns
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// What is replaced, longest first (what the driver agent masks too).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for p in &self.patterns {
            if out.contains(p.as_str()) {
                out = out.replace(p.as_str(), MASK);
            }
        }
        out
    }

    /// `value` with every string (keys included) masked.
    pub fn mask_value(&self, value: &Value) -> Value {
        self.mask_value_at(value, 0)
    }

    fn mask_value_at(&self, value: &Value, depth: usize) -> Value {
        match value {
            Value::String(s) => Value::String(self.mask(s)),
            // Deeper than parameters nest: masked as its JSON text.
            _ if depth >= crate::template::MAX_VALUE_DEPTH => {
                Value::String(self.mask(&serde_json::to_string(value).unwrap_or_default()))
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.mask_value_at(v, depth + 1))
                    .collect(),
            ),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (self.mask(k), self.mask_value_at(v, depth + 1)))
                    .collect(),
            ),
            _ => value.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_checked_with_a_reason() {
        let ok = |t| parse(t).map(|r| (r.kind, r.target.to_string()));
        assert_eq!(
            ok("env:DB_PASSWORD"),
            Ok((SecretKind::Env, "DB_PASSWORD".into()))
        );
        assert_eq!(
            ok("file:/run/secrets/db"),
            Ok((SecretKind::File, "/run/secrets/db".into()))
        );
        assert_eq!(
            ok("command:az keyvault secret show --name db"),
            Ok((
                SecretKind::Command,
                "az keyvault secret show --name db".into()
            ))
        );
        for (bad, why) in [
            ("DB_PASSWORD", "one of"),
            ("vault:x", "unknown secret source `vault`"),
            ("env:1X", "environment variable"),
            ("env:A B", "environment variable"),
            ("env:", "environment variable"),
            ("env:SPOOL_TOKEN", "Spool's own settings"),
            ("file:relative/db", "absolute path"),
            ("command:  ", "command line"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(parse(&format!("file:/{}", "a".repeat(MAX_REFERENCE_CHARS))).is_err());
    }

    #[test]
    fn only_a_one_entry_marker_object_is_a_reference() {
        assert_eq!(reference(&json!({"$secret": "env:X"})), Some("env:X"));
        assert_eq!(reference(&json!({"$secret": "env:X", "other": 1})), None);
        assert_eq!(reference(&json!({"secret": "env:X"})), None);
        assert_eq!(reference(&json!("env:X")), None);
        assert!(contains_reference(
            &json!({"conn": [{"user": "u", "password": {"$secret": "env:PW"}}]})
        ));
        assert!(!contains_reference(
            &json!({"conn": [{"secret": "env:PW"}]})
        ));
        assert_eq!(
            references(&json!({"a": {"$secret": "env:A"}, "b": [{"$secret": "file:/b"}], "c": 1})),
            BTreeSet::from(["env:A".to_string(), "file:/b".to_string()])
        );
    }

    #[test]
    fn resolving_replaces_references_at_any_depth_and_keeps_the_rest() {
        let params: Map<String, Value> = serde_json::from_value(json!({
            "user": "etl",
            "password": {"$secret": "env:PW"},
            "conn": {"hosts": ["a", {"$secret": "file:/k"}]}
        }))
        .unwrap();
        let mut asked = Vec::new();
        let resolved = resolve_params(&params, &mut |text| {
            asked.push(text.to_string());
            Ok(format!("value-of-{text}"))
        })
        .unwrap();
        assert_eq!(
            Value::Object(resolved),
            json!({
                "user": "etl",
                "password": "value-of-env:PW",
                "conn": {"hosts": ["a", "value-of-file:/k"]}
            })
        );
        // In key order: `conn` before `password`.
        assert_eq!(asked, ["file:/k", "env:PW"]);
        let failed = resolve_params(&params, &mut |_| Err("not set".into()));
        assert_eq!(failed, Err("not set".into()));
    }

    #[test]
    fn masking_replaces_the_secret_its_escaped_forms_and_its_lines() {
        let mut m = Masker::default();
        m.add("hunter2-\"quoted\"").unwrap();
        m.add("-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----")
            .unwrap();
        assert_eq!(m.mask("pw=hunter2-\"quoted\"!"), "pw=***!");
        // How json.dumps and an exception's message write it.
        assert_eq!(
            m.mask(r#"{"pw": "hunter2-\"quoted\""}"#),
            r#"{"pw": "***"}"#
        );
        assert_eq!(m.mask("line: MIIEvQIBADANBg"), "line: ***");
        assert_eq!(m.mask("nothing secret"), "nothing secret");
        assert_eq!(
            m.mask_value(&json!({"out": ["x hunter2-\"quoted\""], "n": 3})),
            json!({"out": ["x ***"], "n": 3})
        );
    }

    #[test]
    fn a_secret_too_short_to_mask_is_refused() {
        let mut m = Masker::default();
        assert!(m.add("abc").unwrap_err().contains("too short"));
        assert!(m.is_empty());
        m.add("abcd").unwrap();
        assert_eq!(m.mask("xabcdx"), "x***x");
    }

    #[test]
    fn a_secret_that_contains_another_is_masked_whole() {
        let mut m = Masker::default();
        m.add("pass").unwrap();
        m.add("password1").unwrap();
        assert_eq!(m.mask("password1 pass"), "*** ***");
    }
}
