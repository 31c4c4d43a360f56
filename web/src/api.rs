//! Calls to the server's HTTP API (docs/api.md). Each returns the converted answer or a message
//! fit to show the user.

use crate::wire::{
    ApiError, Bundle, Created, PipelineSummary, ResumeRun, RunDetail, RunSummary, SaveBody,
    StartRun,
};
use gloo_net::http::{Request, Response};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

fn encode(part: &str) -> String {
    String::from(js_sys::encode_uri_component(part))
}

fn pipeline_url(file: &str, suffix: &str) -> String {
    format!("/api/pipelines/{}{suffix}", encode(file))
}

/// The message of a failed call: the server's own, with its first diagnostic if any.
async fn failure(resp: Response) -> String {
    let status = resp.status();
    match resp.json::<ApiError>().await {
        Ok(e) => match e.diagnostics.first() {
            Some(d) => format!(
                "{} ({}:{}:{}: {})",
                e.message, d.file, d.line, d.col, d.message
            ),
            None => e.message,
        },
        Err(_) => format!("the server answered {status}"),
    }
}

async fn send(req: Result<Request, gloo_net::Error>) -> Result<Response, String> {
    let resp = req
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    if resp.ok() {
        Ok(resp)
    } else {
        Err(failure(resp).await)
    }
}

async fn json<T: DeserializeOwned>(req: Result<Request, gloo_net::Error>) -> Result<T, String> {
    send(req)
        .await?
        .json::<T>()
        .await
        .map_err(|e| format!("unexpected answer from the server: {e}"))
}

fn get(url: &str) -> Result<Request, gloo_net::Error> {
    Request::get(url).build()
}

pub async fn pipelines() -> Result<Vec<PipelineSummary>, String> {
    json(get("/api/pipelines")).await
}

pub async fn bundle(file: &str) -> Result<Bundle, String> {
    json(get(&pipeline_url(file, "/bundle"))).await
}

pub async fn save(file: &str, text: &str) -> Result<(), String> {
    send(Request::put(&pipeline_url(file, "")).json(&SaveBody { text }))
        .await
        .map(drop)
}

pub async fn start_run(
    file: &str,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<i64, String> {
    let created: Created =
        json(Request::post("/api/runs").json(&StartRun { file, params })).await?;
    Ok(created.id)
}

pub async fn runs() -> Result<Vec<RunSummary>, String> {
    json(get("/api/runs")).await
}

pub async fn run(id: i64) -> Result<RunDetail, String> {
    json(get(&format!("/api/runs/{id}"))).await
}

pub async fn cancel(id: i64) -> Result<(), String> {
    send(Request::post(&format!("/api/runs/{id}/cancel")).build())
        .await
        .map(drop)
}

pub async fn resume(id: i64, params: &BTreeMap<String, serde_json::Value>) -> Result<i64, String> {
    let created: Created =
        json(Request::post(&format!("/api/runs/{id}/resume")).json(&ResumeRun { params })).await?;
    Ok(created.id)
}

pub fn events_url(id: i64) -> String {
    format!("/api/runs/{id}/events")
}
