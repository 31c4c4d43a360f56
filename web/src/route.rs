//! The address of every view, so that a view can be linked to, reloaded, and left with the
//! browser's back button: `#/pipelines/{file}/{editor|graph|dry-run|source|grid}`, `#/runs`,
//! `#/runs/{id}`, `#/runs/{id}/{task}`. Reading an address is a pure function; an address
//! that names no view reads as `None`, and the app shows its default view.

use crate::shell::Tab;

/// A view of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A pipeline file (a path under the pipelines folder) in one of its views.
    Pipeline { file: String, tab: Tab },
    /// The runs of the open pipeline.
    Runs,
    /// One run, and perhaps one of its tasks (`sub/notebook` inside a sub-pipeline).
    Run { id: i64, task: Option<String> },
}

/// Longer addresses are not read.
const MAX_ADDRESS: usize = 4096;

fn view_name(tab: Tab) -> Option<&'static str> {
    match tab {
        Tab::Pipeline => Some("editor"),
        Tab::Graph => Some("graph"),
        Tab::DryRun => Some("dry-run"),
        Tab::Source => Some("source"),
        Tab::Grid => Some("grid"),
        Tab::Runs => None,
    }
}

fn tab_named(name: &str) -> Option<Tab> {
    [
        Tab::Pipeline,
        Tab::Graph,
        Tab::DryRun,
        Tab::Source,
        Tab::Grid,
    ]
    .into_iter()
    .find(|t| view_name(*t) == Some(name))
}

impl Route {
    /// The address (with its `#`).
    pub fn to_hash(&self) -> String {
        match self {
            Route::Pipeline { file, tab } => format!(
                "#/pipelines/{}/{}",
                encode(file),
                view_name(*tab).unwrap_or("editor")
            ),
            Route::Runs => "#/runs".into(),
            Route::Run { id, task: None } => format!("#/runs/{id}"),
            Route::Run { id, task: Some(t) } => format!("#/runs/{id}/{}", encode(t)),
        }
    }

    /// Reads an address (`location.hash`, with or without its `#`). The address of earlier
    /// versions, `#file=FILE`, is the file's editor.
    pub fn parse(hash: &str) -> Option<Route> {
        if hash.len() > MAX_ADDRESS {
            return None;
        }
        let hash = hash.strip_prefix('#').unwrap_or(hash);
        if let Some(file) = hash.strip_prefix("file=") {
            return Some(Route::Pipeline {
                file: decode(file).filter(|f| !f.is_empty())?,
                tab: Tab::Pipeline,
            });
        }
        let path = hash.strip_prefix('/')?.trim_end_matches('/');
        if let Some(rest) = path.strip_prefix("pipelines/") {
            let (file, view) = rest.rsplit_once('/')?;
            let file = decode(file).filter(|f| !f.is_empty())?;
            return Some(Route::Pipeline {
                file,
                tab: tab_named(view)?,
            });
        }
        if path == "runs" {
            return Some(Route::Runs);
        }
        let rest = path.strip_prefix("runs/")?;
        let (id, task) = match rest.split_once('/') {
            Some((id, task)) => (id, Some(decode(task).filter(|t| !t.is_empty())?)),
            None => (rest, None),
        };
        let id = id.parse().ok().filter(|id| *id > 0)?;
        Some(Route::Run { id, task })
    }
}

/// Percent-encodes what an address cannot hold as it is (`/` stays: files and tasks are paths).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `None` for a `%` not followed by two hex digits, or bytes that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(file: &str, tab: Tab) -> Option<Route> {
        Some(Route::Pipeline {
            file: file.into(),
            tab,
        })
    }

    #[test]
    fn every_view_has_an_address_that_reads_back_as_it() {
        let routes = [
            pipeline("daily_sales.toml", Tab::Pipeline),
            pipeline("dims/build calendar.toml", Tab::Graph),
            pipeline("ventes_été.toml", Tab::DryRun),
            pipeline("a%b#c?.toml", Tab::Source),
            pipeline("daily_sales.toml", Tab::Grid),
            Some(Route::Runs),
            Some(Route::Run { id: 12, task: None }),
            Some(Route::Run {
                id: 3,
                task: Some("dims/load_fx rates".into()),
            }),
        ];
        for route in routes.into_iter().flatten() {
            let hash = route.to_hash();
            assert!(!hash[1..].contains(['#', '?', ' ']), "{hash}");
            assert_eq!(Route::parse(&hash), Some(route), "{hash}");
        }
    }

    #[test]
    fn addresses_read_as_the_scheme_says() {
        assert_eq!(
            Route::parse("#/pipelines/daily_sales.toml/graph"),
            pipeline("daily_sales.toml", Tab::Graph)
        );
        assert_eq!(
            Route::parse("#/pipelines/dims/calendar.toml/dry-run/"),
            pipeline("dims/calendar.toml", Tab::DryRun)
        );
        assert_eq!(
            Route::parse("#/runs/7/load_orders"),
            Some(Route::Run {
                id: 7,
                task: Some("load_orders".into())
            })
        );
        assert_eq!(
            Route::parse("#/pipelines/daily_sales.toml/grid"),
            pipeline("daily_sales.toml", Tab::Grid),
            "the grid of the pipeline's last runs"
        );
        assert_eq!(Route::parse("/runs"), Some(Route::Runs));
        assert_eq!(Route::parse("#/runs/"), Some(Route::Runs));
        assert_eq!(
            Route::parse("#file=daily_sales.toml"),
            pipeline("daily_sales.toml", Tab::Pipeline),
            "the address of earlier versions"
        );
    }

    #[test]
    fn addresses_that_name_no_view_read_as_none() {
        let long = format!("#/pipelines/{}/graph", "a".repeat(MAX_ADDRESS));
        for bad in [
            "",
            "#",
            "#/",
            "#/pipelines",
            "#/pipelines/",
            "#/pipelines/x.toml",
            "#/pipelines//graph",
            "#/pipelines/x.toml/runs",
            "#/pipelines/x.toml/gantt",
            "#/pipelines/%zz.toml/graph",
            "#/pipelines/%C3.toml/graph",
            "#/pipelines/x%.toml/graph",
            "#/runs/abc",
            "#/runs/0",
            "#/runs/-3",
            "#/runs/99999999999999999999999",
            "#/runs/5/%",
            "#/settings",
            "#file=",
            "pipelines/x.toml/graph",
            &long,
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }
}
