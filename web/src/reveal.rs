//! Bringing a clicked diagnostic's field into sight, once the view shows it: the input of its
//! key in its step's row of the table (or in the node's fields beside the graph), else the
//! step's column, else the row.

use crate::editor::column_of;
use crate::state::{Action, Reveal, State};
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement};
use yew::prelude::*;

/// Renders of a view that look for a clicked diagnostic's field before giving up (the table
/// draws the row's page on the render after the click).
const TRIES: u32 = 3;

/// After each render of a view with fields: the clicked diagnostic's field focused, then
/// forgotten (so that coming back to the view later does not jump to it again).
#[hook]
pub fn use_reveal(app: &UseReducerHandle<State>) {
    let tries = use_mut_ref(|| (0u64, 0u32));
    let (reveal, dispatch) = (app.reveal.clone(), app.dispatcher());
    use_effect(move || {
        let Some(r) = reveal else { return };
        let mut tries = tries.borrow_mut();
        if tries.0 != r.seq {
            *tries = (r.seq, 0);
        }
        tries.1 += 1;
        if focus(&r) || tries.1 >= TRIES {
            dispatch.dispatch(Action::Revealed(r.seq));
        }
    });
}

/// Focuses and scrolls to what `r` points at; whether it is on the page (when not, the view
/// has not drawn it yet, or it is not there to show: `true` too when there is no page).
pub fn focus(r: &Reveal) -> bool {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return true;
    };
    let Some(target) = find(&doc, r) else {
        return false;
    };
    target.scroll_into_view();
    let _ = target.focus();
    true
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
