//! Bringing a clicked diagnostic's field into sight, once the view shows it: the input of its
//! key in its step's row of the table (or in the node's fields beside the graph), else the
//! step's column, else the row.

use crate::doc_state::{DocAction, DocState, Reveal};
use crate::editor::column_of;
use crate::state::{Action, State};
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement};
use yew::prelude::*;

/// Looks for a clicked diagnostic's field this many times, this far apart, before giving up
/// (the table draws the row's page on the render after the click).
const TRIES: u32 = 5;
const APART_MS: u32 = 80;

/// In a view with fields: the clicked diagnostic's field focused, then forgotten (so that
/// coming back to the view later does not jump to it again); one the view does not show goes to
/// the source at its line.
#[hook]
pub fn use_reveal(editing: &DocState, dispatch: &UseReducerDispatcher<State>) {
    let started = use_mut_ref(|| 0u64);
    let (reveal, dispatch) = (editing.reveal.clone(), dispatch.clone());
    use_effect(move || {
        if let Some(r) = reveal.filter(|r| *started.borrow() != r.seq) {
            *started.borrow_mut() = r.seq;
            attempt(r, dispatch, TRIES);
        }
    });
}

fn attempt(r: Reveal, dispatch: UseReducerDispatcher<State>, left: u32) {
    if focus(&r) {
        dispatch.dispatch(Action::Doc(DocAction::Revealed(r.seq)));
    } else if left <= 1 {
        dispatch.dispatch(if r.in_source {
            Action::Doc(DocAction::Revealed(r.seq))
        } else {
            Action::RevealInSource(r.seq)
        });
    } else {
        gloo_timers::callback::Timeout::new(APART_MS, move || attempt(r, dispatch, left - 1))
            .forget();
    }
}

/// Focuses and scrolls to what `r` points at; whether it is on the page (when not, the view
/// has not drawn it yet, or it is not there to show: `true` too when there is no page).
pub fn focus(r: &Reveal) -> bool {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return true;
    };
    if r.in_source {
        return show_line(&doc, r.line, r.col);
    }
    let Some(target) = find(&doc, r) else {
        return false;
    };
    target.scroll_into_view();
    let _ = target.focus();
    true
}

/// The source view's caret at `line`:`col`, scrolled to it; whether the view is there.
fn show_line(doc: &Document, line: usize, col: usize) -> bool {
    let Some(area) = doc
        .get_element_by_id("source-text")
        .and_then(|e| e.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
    else {
        return false;
    };
    let text = area.value();
    let at = source_offset(&text, line, col);
    let _ = area.focus();
    let _ = area.set_selection_range(at, at);
    // The caret's share of the lines, as a share of the text's height.
    let lines = text.matches('\n').count() + 1;
    let top = f64::from(area.scroll_height()) * (line.saturating_sub(1) as f64) / lines as f64;
    area.set_scroll_top((top - f64::from(area.client_height()) / 3.0).max(0.0) as i32);
    true
}

/// The offset of 1-based `line` and `col` (in characters) in `text`, in UTF-16 units as a
/// text area counts them; past the end, the end.
pub fn source_offset(text: &str, line: usize, col: usize) -> u32 {
    let mut units = 0usize;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            let within: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf16)
                .sum();
            return (units + within) as u32;
        }
        units += l.encode_utf16().count() + 1;
    }
    text.encode_utf16().count() as u32
}

fn elements(root: &Document, selector: &str) -> Vec<Element> {
    let Ok(list) = root.query_selector_all(selector) else {
        return Vec::new();
    };
    (0..list.length())
        .filter_map(|i| list.item(i)?.dyn_into::<Element>().ok())
        .collect()
}

fn is_input(el: &Element) -> bool {
    matches!(el.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA")
}

/// The first input inside `el` (or `el`).
fn first_input(el: &Element) -> Option<HtmlElement> {
    el.query_selector("input, select, textarea")
        .ok()
        .flatten()
        .unwrap_or_else(|| el.clone())
        .dyn_into()
        .ok()
}

fn find(doc: &Document, r: &Reveal) -> Option<HtmlElement> {
    // Attributes are compared, not put into selectors: ids come from the file.
    let item = r.item.as_deref();
    if let Some(key) = r.key.as_deref() {
        let suffix = format!(".{key}");
        let field = elements(doc, "[data-field]").into_iter().find(|el| {
            let f = el.get_attribute("data-field").unwrap_or_default();
            is_input(el)
                && el.get_attribute("data-id").as_deref() == item
                && (f == key || (item.is_none() && f.ends_with(&suffix)))
        });
        if let Some(field) = field {
            return field.dyn_into().ok();
        }
    }
    let Some(item) = item else {
        return match r.key.as_deref() {
            Some("params") => doc
                .query_selector(".pipeline-params")
                .ok()
                .flatten()
                .and_then(|el| first_input(&el)),
            _ => None,
        };
    };
    let place = elements(doc, "tr[data-id], aside.node-panel[data-id]")
        .into_iter()
        .find(|el| el.get_attribute("data-id").as_deref() == Some(item))?;
    let column = r.key.as_deref().and_then(column_of).and_then(|label| {
        let cells = place.query_selector_all("td[data-col]").ok()?;
        (0..cells.length())
            .filter_map(|i| cells.item(i)?.dyn_into::<Element>().ok())
            .find(|td| td.get_attribute("data-col").as_deref() == Some(label))
    });
    first_input(column.as_ref().unwrap_or(&place))
}

#[cfg(test)]
mod tests {
    use super::source_offset;

    #[test]
    fn a_line_and_column_become_a_text_area_offset() {
        let text = "a = 1\n𝄞é = 2\nc";
        assert_eq!(source_offset(text, 1, 1), 0);
        assert_eq!(source_offset(text, 2, 1), 6);
        // `𝄞` is two UTF-16 units, `é` one.
        assert_eq!(source_offset(text, 2, 3), 9);
        assert_eq!(source_offset(text, 3, 1), 14);
        assert_eq!(source_offset(text, 9, 1), 15, "past the end: the end");
    }
}
