//! Azure Data Factory / Synapse value formats: timespans, parameter types and the small part of
//! the expression language an import can carry over (plain pipeline parameter references).

use serde_json::Value;

/// The longest timeout accepted (Data Factory's own maximum is 7 days).
const MAX_TIMEOUT_DAYS: u64 = 365;

/// A timespan `[d.]hh:mm:ss[.fffffff]` in whole seconds, fractions rounded up so a limit is
/// never shortened.
pub(crate) fn parse_timespan(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a timespan like `0.12:00:00` (days.hours:minutes:seconds)");
    let t = s.trim();
    let (days, clock) = match t.split_once(':') {
        Some((head, _)) => match head.split_once('.') {
            Some((d, _)) => (d.parse::<u64>().map_err(|_| bad())?, &t[d.len() + 1..]),
            None => (0, t),
        },
        None => return Err(bad()),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, sec] = parts[..] else {
        return Err(bad());
    };
    let (sec, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let num = |x: &str, max: u64| -> Result<u64, String> {
        if x.is_empty() || x.len() > 2 || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let v: u64 = x.parse().map_err(|_| bad())?;
        if v > max {
            return Err(bad());
        }
        Ok(v)
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m, sec) = (num(h, 23)?, num(m, 59)?, num(sec, 59)?);
    if days > MAX_TIMEOUT_DAYS {
        return Err(format!("`{s}` is longer than {MAX_TIMEOUT_DAYS} days"));
    }
    let round_up = u64::from(frac.bytes().any(|b| b != b'0'));
    let total = days * 86_400 + h * 3600 + m * 60 + sec + round_up;
    if total == 0 {
        return Err(format!(
            "`{s}` is zero; a timeout must be at least one second"
        ));
    }
    Ok(total)
}

/// Where a parameter value comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    Literal(Value),
    /// Expression text, starting with `@` or containing `@{…}`.
    Expression(String),
}

impl Source {
    /// Reads a value as Data Factory stores it: a literal, `{"value": "@…", "type":
    /// "Expression"}`, or a string that starts with `@` (`@@` escapes a literal `@`).
    pub fn of(v: &Value) -> Source {
        if let Value::Object(map) = v {
            let is_expr = map
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("expression"));
            if let (true, Some(Value::String(text))) = (is_expr, map.get("value")) {
                return Source::Expression(text.clone());
            }
        }
        match v {
            Value::String(s) if s.starts_with("@@") => {
                Source::Literal(Value::String(s[1..].into()))
            }
            Value::String(s) if s.starts_with('@') || s.contains("@{") => {
                Source::Expression(s.clone())
            }
            other => Source::Literal(other.clone()),
        }
    }
}

/// The parameter named by `pipeline().parameters.NAME` (or `…parameters['NAME']`).
fn plain_reference(body: &str) -> Option<&str> {
    let rest = body.trim().strip_prefix("pipeline().parameters")?;
    let name = if let Some(n) = rest.strip_prefix('.') {
        n
    } else {
        rest.strip_prefix("['")?.strip_suffix("']")?
    };
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then_some(name)
}

/// Evaluates an expression made only of plain parameter references: `@pipeline().parameters.x`
/// gives the parameter's value, `"sales_@{pipeline().parameters.env}"` its text spliced in.
/// `lookup` gives a parameter's value or why it has none. Returns the value and the names of
/// the parameters used.
pub(crate) fn evaluate(
    text: &str,
    lookup: &dyn Fn(&str) -> Result<Value, String>,
) -> Result<(Value, Vec<String>), String> {
    let unsupported = || {
        format!("`{text}` is not a plain `@pipeline().parameters.NAME` reference; Spool cannot evaluate it")
    };
    if let Some(body) = text.strip_prefix('@').filter(|_| !text.starts_with("@{")) {
        let name = plain_reference(body).ok_or_else(unsupported)?;
        return Ok((lookup(name)?, vec![name.to_string()]));
    }
    let mut out = String::new();
    let mut used = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(unsupported)?;
        let name = plain_reference(&after[..end]).ok_or_else(unsupported)?;
        match lookup(name)? {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        used.push(name.to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((Value::String(out), used))
}

/// Converts a value to a declared parameter type (`string`, `int`, `float`, `bool`, and the
/// pipeline types `array`, `object`, `securestring`), as Data Factory does when it passes it.
pub(crate) fn coerce(v: &Value, ty: &str) -> Result<Value, String> {
    let ty_lower = ty.to_ascii_lowercase();
    let fail = || format!("{v} is not a valid `{ty}`");
    match (ty_lower.as_str(), v) {
        ("string" | "securestring", Value::String(_)) => Ok(v.clone()),
        ("string" | "securestring", Value::Number(_) | Value::Bool(_)) => {
            Ok(Value::String(v.to_string()))
        }
        ("int", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(v.clone()),
        ("int", Value::String(s)) => s.trim().parse::<i64>().map(Value::from).map_err(|_| fail()),
        ("float", Value::Number(n)) => n.as_f64().map(Value::from).ok_or_else(fail),
        ("float", Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from)
            .ok_or_else(fail),
        ("bool", Value::Bool(_)) => Ok(v.clone()),
        ("bool", Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true.into()),
        ("bool", Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(false.into()),
        ("array", Value::Array(_)) | ("object", Value::Object(_)) => Ok(v.clone()),
        ("string" | "securestring" | "int" | "float" | "bool" | "array" | "object", _) => {
            Err(fail())
        }
        _ => Err(format!("unknown parameter type `{ty}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("0.12:00:00"), Ok(43_200));
        assert_eq!(parse_timespan("7.00:00:00"), Ok(604_800));
        assert_eq!(parse_timespan("01:30:05"), Ok(5405));
        assert_eq!(parse_timespan("0.00:00:29.5"), Ok(30));
        assert_eq!(
            parse_timespan("2.03:04:05.0000000"),
            Ok(2 * 86_400 + 3 * 3600 + 245)
        );
        for bad in [
            "",
            "12",
            "0.24:00:00",
            "1:2",
            "0.00:60:00",
            "x.01:00:00",
            "0.00:00:00",
            "00:00:1a",
        ] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
        assert!(parse_timespan("400.00:00:00")
            .unwrap_err()
            .contains("365 days"));
    }

    #[test]
    fn sources_follow_data_factory_conventions() {
        assert_eq!(
            Source::of(&json!({"value": "@pipeline().parameters.x", "type": "Expression"})),
            Source::Expression("@pipeline().parameters.x".into())
        );
        assert_eq!(
            Source::of(&json!("@@home")),
            Source::Literal(json!("@home"))
        );
        assert_eq!(
            Source::of(&json!("a@{b}")),
            Source::Expression("a@{b}".into())
        );
        assert_eq!(Source::of(&json!(5)), Source::Literal(json!(5)));
    }

    #[test]
    fn evaluates_plain_references_only() {
        let lookup = |n: &str| match n {
            "env" => Ok(json!("prod")),
            "n" => Ok(json!(3)),
            _ => Err(format!("no `{n}`")),
        };
        assert_eq!(
            evaluate("@pipeline().parameters.n", &lookup).unwrap().0,
            json!(3)
        );
        assert_eq!(
            evaluate(
                " @{pipeline().parameters.env}_sales_@{pipeline().parameters['n']}",
                &lookup
            )
            .unwrap(),
            (
                json!(" prod_sales_3"),
                vec!["env".to_string(), "n".to_string()]
            )
        );
        assert!(evaluate("@concat('a', pipeline().parameters.env)", &lookup)
            .unwrap_err()
            .contains("not a plain"));
        assert_eq!(
            evaluate("@pipeline().parameters.zz", &lookup).unwrap_err(),
            "no `zz`"
        );
        assert!(evaluate("@pipeline().RunId", &lookup).is_err());
    }

    #[test]
    fn coerces_like_data_factory() {
        assert_eq!(coerce(&json!("42"), "int"), Ok(json!(42)));
        assert_eq!(coerce(&json!("True"), "bool"), Ok(json!(true)));
        assert_eq!(coerce(&json!(7), "String"), Ok(json!("7")));
        assert_eq!(coerce(&json!("1.5"), "float"), Ok(json!(1.5)));
        assert!(coerce(&json!("abc"), "int").is_err());
        assert!(coerce(&json!(1), "decimal").is_err());
    }
}
