//! Reading JSON input field by field, so that every problem names the item and the field.

use super::report::{Place, Report};
use serde_json::{Map, Value};

/// The JSON type of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses JSON text; a syntax error becomes an error finding with its line and column.
pub(crate) fn parse(text: &str, place: &Place, r: &mut Report) -> Option<Value> {
    if text.len() > crate::model::MAX_METADATA_BYTES {
        r.error(
            place,
            format!(
                "the file is {} bytes, over the {} MiB limit",
                text.len(),
                crate::model::MAX_METADATA_BYTES / (1024 * 1024)
            ),
        );
        return None;
    }
    match serde_json::from_str(text.trim_start_matches('\u{feff}')) {
        Ok(v) => Some(v),
        Err(e) => {
            let text = e.to_string();
            let message = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(m, _)| m);
            r.error(
                &place.line(e.line()),
                format!("not valid JSON (column {}): {message}", e.column()),
            );
            None
        }
    }
}

/// A JSON object being read, with the place it sits at.
pub(crate) struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub place: Place,
}

impl<'a> Obj<'a> {
    /// `v` as an object, or an error saying what `what` should have been.
    pub fn of(v: &'a Value, place: Place, what: &str, r: &mut Report) -> Option<Obj<'a>> {
        match v {
            Value::Object(map) => Some(Obj { map, place }),
            other => {
                r.error(
                    &place,
                    format!("{what} must be a JSON object, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A present, non-null value.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn at(&self, key: &str) -> Place {
        self.place.field(key)
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value, r: &mut Report) {
        r.error(
            &self.at(key),
            format!("must be {expected}, found {}", type_name(found)),
        );
    }

    pub fn string(&self, key: &str, r: &mut Report) -> Option<&'a str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            other => {
                self.wrong_type(key, "a string", other, r);
                None
            }
        }
    }

    /// A string that must be there and not be blank.
    pub fn required_string(&self, key: &str, r: &mut Report) -> Option<&'a str> {
        if self.get(key).is_none() {
            r.error(&self.at(key), "is missing");
            return None;
        }
        let s = self.string(key, r)?;
        if s.trim().is_empty() {
            r.error(&self.at(key), "is empty");
            return None;
        }
        Some(s)
    }

    pub fn object(&self, key: &str, r: &mut Report) -> Option<Obj<'a>> {
        match self.get(key)? {
            Value::Object(map) => Some(Obj {
                map,
                place: self.at(key),
            }),
            other => {
                self.wrong_type(key, "an object", other, r);
                None
            }
        }
    }

    pub fn array(&self, key: &str, r: &mut Report) -> Option<&'a [Value]> {
        match self.get(key)? {
            Value::Array(items) => Some(items),
            other => {
                self.wrong_type(key, "an array", other, r);
                None
            }
        }
    }

    pub fn bool(&self, key: &str, r: &mut Report) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(key, "true or false", other, r);
                None
            }
        }
    }

    /// A whole number no smaller than `min`; numeric strings are accepted too (some exports
    /// write `"retry": "2"`).
    pub fn uint(&self, key: &str, min: u64, r: &mut Report) -> Option<u64> {
        let v = self.get(key)?;
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 2f64.powi(53))
                    .map(|f| f as u64)
            }),
            Value::String(s) if s.trim_start().starts_with('@') => {
                r.error(
                    &self.at(key),
                    format!("`{s}` is a pipeline expression; Spool needs a plain number here"),
                );
                return None;
            }
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= min => Some(n),
            Some(n) => {
                r.error(&self.at(key), format!("must be at least {min}, found {n}"));
                None
            }
            None => {
                r.error(
                    &self.at(key),
                    format!("must be a whole number of at least {min}, found {v}"),
                );
                None
            }
        }
    }

    /// A whole number that fits a `u32`.
    pub fn uint32(&self, key: &str, min: u64, r: &mut Report) -> Option<u32> {
        let n = self.uint(key, min, r)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                r.error(&self.at(key), format!("{n} is too large"));
                None
            }
        }
    }

    /// Warns about keys that are not read, so that nothing is dropped silently.
    pub fn ignored_keys(&self, known: &[&str], r: &mut Report) {
        for key in self.map.keys().filter(|k| !known.contains(&k.as_str())) {
            r.warning(&self.at(key), "is not a known field; ignored");
        }
    }
}

/// A JSON value as a TOML value; `null` (also inside arrays and objects) has no TOML form.
pub(crate) fn to_toml(v: &Value) -> Result<toml_edit::Value, String> {
    Ok(match v {
        Value::Null => return Err("null has no TOML form".into()),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) if n.is_f64() => f.into(),
            _ => return Err(format!("{n} is too large for a TOML integer")),
        },
        // Imported text is text: a `{{` in it is not a reference.
        Value::String(s) => crate::template::escape(s).as_ref().into(),
        Value::Array(items) => {
            let mut a = toml_edit::Array::new();
            for item in items {
                a.push(to_toml(item)?);
            }
            toml_edit::Value::Array(a)
        }
        Value::Object(map) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, item) in map {
                t.insert(k, to_toml(item)?);
            }
            toml_edit::Value::InlineTable(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uint_names_the_field_and_accepts_numeric_strings() {
        let v = json!({"policy": {"retry": "2", "interval": -1, "x": "@pipeline().parameters.n"}});
        let mut r = Report::default();
        let root = Obj::of(&v, Place::file("p.json").item("Load"), "x", &mut r).unwrap();
        let policy = root.object("policy", &mut r).unwrap();
        assert_eq!(policy.uint("retry", 0, &mut r), Some(2));
        assert_eq!(policy.uint("interval", 0, &mut r), None);
        assert_eq!(policy.uint("x", 0, &mut r), None);
        let text = r.render();
        assert!(
            text.contains("error: p.json: `Load`: policy.interval: must be a whole number"),
            "{text}"
        );
        assert!(text.contains("policy.x: `@pipeline().parameters.n` is a pipeline expression"));
    }

    #[test]
    fn toml_values_refuse_null_anywhere() {
        assert!(to_toml(&json!({"a": [1, null]})).is_err());
        assert_eq!(to_toml(&json!(1.5)).unwrap().as_float(), Some(1.5));
        assert_eq!(to_toml(&json!(7)).unwrap().as_integer(), Some(7));
        assert!(to_toml(&json!(u64::MAX)).is_err());
    }
}
