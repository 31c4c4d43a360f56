//! A small RFC 4180 CSV reader: comma-separated, `"`-quoted fields that may hold commas, line
//! breaks and `""` for a quote. A file that is not valid that way is read again with `\"` for a
//! quote inside quoted fields, the way Spark's CSV writer escapes by default (the two styles
//! read `\""` differently, so the standard one is tried first).

/// One record and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Most fields in one record.
const MAX_FIELDS: usize = 1024;

/// The records of `text` (blank lines skipped), or the line and reason of the first error.
pub(crate) fn parse(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    parse_with(text, false).or_else(|rfc_error| parse_with(text, true).map_err(|_| rfc_error))
}

fn parse_with(text: &str, backslash_escapes: bool) -> Result<Vec<Record>, (usize, String)> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        let start_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted_field = false;
        let mut at_field_start = true;
        let mut end_of_input = true;
        while let Some(c) = chars.next() {
            end_of_input = false;
            match c {
                '"' if at_field_start => {
                    quoted_field = true;
                    at_field_start = false;
                    let quote_line = line;
                    loop {
                        match chars.next() {
                            None => {
                                return Err((quote_line, "a quoted field is never closed".into()))
                            }
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some('\\') if backslash_escapes && chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some(ch) => {
                                if ch == '\n' {
                                    line += 1;
                                }
                                field.push(ch);
                            }
                        }
                    }
                    match chars.peek() {
                        None | Some(',' | '\r' | '\n') => {}
                        Some(_) => {
                            return Err((
                                line,
                                "text follows a closing quote; write a quote inside a quoted field as \"\""
                                    .into(),
                            ))
                        }
                    }
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    quoted_field = false;
                    at_field_start = true;
                    if fields.len() > MAX_FIELDS {
                        return Err((start_line, format!("more than {MAX_FIELDS} fields")));
                    }
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break;
                }
                '"' => {
                    return Err((
                        line,
                        "a quote inside an unquoted field; quote the whole field".into(),
                    ))
                }
                other => {
                    field.push(other);
                    at_field_start = false;
                }
            }
        }
        let blank = fields.is_empty() && field.is_empty() && !quoted_field;
        if !blank {
            fields.push(field);
            records.push(Record {
                line: start_line,
                fields,
            });
        }
        if end_of_input {
            break;
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        parse(text).unwrap().into_iter().map(|r| r.fields).collect()
    }

    #[test]
    fn reads_rfc4180() {
        assert_eq!(
            fields("a,b,c\r\n1,\"x, \"\"y\"\"\",\n\n\"multi\nline\",2,3"),
            vec![
                vec!["a", "b", "c"],
                vec!["1", "x, \"y\"", ""],
                vec!["multi\nline", "2", "3"],
            ]
        );
        let recs = parse("h\n\"a\nb\"\nc\n").unwrap();
        assert_eq!(
            recs.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
    }

    #[test]
    fn reads_spark_backslash_escapes_when_the_file_is_not_rfc4180() {
        assert_eq!(
            fields("\"{\\\"d\\\": 1}\",x"),
            vec![vec!["{\"d\": 1}", "x"]]
        );
        // Standard escaping wins where both readings work: a JSON `\"` written as `\""`.
        assert_eq!(
            fields("\"{\"\"s\"\": \"\"a \\\"\"b\\\"\"\"\"}\""),
            vec![vec!["{\"s\": \"a \\\"b\\\"\"}"]]
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("a\n\"open").unwrap_err().0, 2);
        assert_eq!(parse("a\nb\"c").unwrap_err().0, 2);
        assert_eq!(parse("\"a\"b").unwrap_err().0, 1);
    }
}
