//! HTTP: a live results page, the read-only results API and the avatars the
//! registry's pictures point at. (The full dashboard and the ballot API build
//! on this router.)

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::aggregate::BUILTIN;
use crate::generate::avatar_svg;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct AppState {
    store: Arc<Mutex<Box<dyn Store>>>,
    default_election: Arc<str>,
}

impl AppState {
    pub fn new(store: Box<dyn Store>, default_election: String) -> AppState {
        AppState {
            store: Arc::new(Mutex::new(store)),
            default_election: Arc::from(default_election),
        }
    }

    /// Runs a store query off the async workers.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store
                .lock()
                .map_err(|_| ApiError::Internal("store lock poisoned".into()))?;
            f(&mut **guard).map_err(ApiError::from)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    }
}

#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownElection(id) => ApiError::NotFound(format!("no election {id:?}")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
        };
        (
            status,
            Json(serde_json::json!({"error": code, "message": message})),
        )
            .into_response()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/elections", get(elections))
        .route("/api/v1/elections/{id}/results", get(results))
        .route("/avatars/{kind}/{file}", get(avatar))
        .with_state(state)
}

async fn page(State(st): State<AppState>) -> Html<String> {
    Html(PAGE.replace("__ELECTION__", &html_escape(&st.default_election)))
}

async fn elections(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = st.with_store(|s| s.elections()).await?;
    let out: Vec<_> = list
        .into_iter()
        .map(|e| serde_json::json!({"election": e.election, "candidates": e.candidates}))
        .collect();
    Ok(Json(serde_json::Value::Array(out)))
}

async fn results(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::results::Results>, ApiError> {
    Ok(Json(st.with_store(move |s| s.results(&id, BUILTIN)).await?))
}

async fn avatar(
    State(st): State<AppState>,
    Path((kind, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = file.strip_suffix(".svg").unwrap_or(&file).to_string();
    let label = match kind.as_str() {
        "voter" => {
            let id2 = id.clone();
            st.with_store(move |s| s.voter(&id2))
                .await?
                .map(|v| v.voter_name)
                .ok_or_else(|| ApiError::NotFound(format!("no voter {id:?}")))?
        }
        "candidate" => {
            let id2 = id.clone();
            st.with_store(move |s| s.elections())
                .await?
                .into_iter()
                .flat_map(|e| e.candidates)
                .find(|c| c.candidate_id == id2)
                .map(|c| c.candidate_name)
                .ok_or_else(|| ApiError::NotFound(format!("no candidate {id:?}")))?
        }
        _ => return Err(ApiError::NotFound(format!("no avatars of kind {kind:?}"))),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        avatar_svg(&id, &label),
    )
        .into_response())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A minimal live page: polls the results API and renders with textContent
/// only, so hostile names are shown, never executed.
const PAGE: &str = include_str!("serve_page.html");
