//! The web UI: a session's jobs, stages, tasks, executors, fits and models as HTML pages with
//! SVG pictures, and `/metrics` for Prometheus — served by the driver (`kiln.ui.port`) or, over
//! finished sessions' event logs, by `kiln history`.

mod html;
pub(crate) mod pages;
pub(crate) mod svg;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Path, Request, State as With};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{EngineError, Result};
use crate::status::State;

/// A model as the models page lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelRow {
    pub(crate) name: String,
    pub(crate) algorithm: String,
    pub(crate) features: Vec<String>,
    pub(crate) label: String,
    pub(crate) params: String,
    /// The training report's rows, when the model has one.
    pub(crate) report: Option<Vec<(String, String)>>,
}

/// What the pages of one session are drawn from.
pub(crate) trait Source: Send + Sync + 'static {
    /// The session's state now.
    fn state(&self) -> State;
    /// Its models.
    fn models(&self) -> Vec<ModelRow>;
    /// `/metrics`' text, when the session has metrics (a live one).
    fn metrics(&self) -> Option<String>;
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(format!("<h1>Not found</h1><p>{}</p>", pages::escape(what))),
    )
        .into_response()
}

/// What every page handler of one session gets: where its state comes from and the prefix
/// its links start with.
#[derive(Clone)]
struct Pages {
    source: Arc<dyn Source>,
    base: Arc<str>,
}

/// Prometheus' text with its content type.
fn metrics_response(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn jobs_page(With(p): With<Pages>) -> Html<String> {
    Html(pages::jobs(&p.source.state(), &p.base))
}

async fn job_page(With(p): With<Pages>, Path(job): Path<String>) -> Response {
    let state = p.source.state();
    match state.job(&job) {
        Some(j) => Html(pages::job(&state, &p.base, j)).into_response(),
        None => not_found(&format!("no job {job}")),
    }
}

async fn stage_page(With(p): With<Pages>, Path((job, stage)): Path<(String, u32)>) -> Response {
    let state = p.source.state();
    match state
        .job(&job)
        .and_then(|j| pages::stage(&state, &p.base, j, stage))
    {
        Some(page) => Html(page).into_response(),
        None => not_found(&format!("no stage {stage} in job {job}")),
    }
}

async fn executors_page(With(p): With<Pages>) -> Html<String> {
    Html(pages::executors(&p.source.state(), &p.base))
}

async fn training_page(With(p): With<Pages>) -> Html<String> {
    Html(pages::training(&p.source.state(), &p.base))
}

async fn fit_page(With(p): With<Pages>, Path(fit): Path<String>) -> Response {
    let state = p.source.state();
    match state.fit(&fit) {
        Some(f) => Html(pages::fit(&state, &p.base, f)).into_response(),
        None => not_found(&format!("no fit {fit}")),
    }
}

async fn models_page(With(p): With<Pages>) -> Html<String> {
    Html(pages::models(
        &p.source.state(),
        &p.base,
        &p.source.models(),
    ))
}

async fn metrics_page(With(p): With<Pages>) -> Response {
    match p.source.metrics() {
        Some(text) => metrics_response(text),
        None => not_found("a finished session has no metrics"),
    }
}

/// The pages of one session, their links starting with `base` (`""` or `/s/<session>`).
pub(crate) fn session_pages(source: Arc<dyn Source>, base: &str) -> Router {
    Router::new()
        .route("/", get(jobs_page))
        .route("/jobs/{job}", get(job_page))
        .route("/jobs/{job}/stages/{stage}", get(stage_page))
        .route("/executors", get(executors_page))
        .route("/training", get(training_page))
        .route("/training/{fit}", get(fit_page))
        .route("/models", get(models_page))
        .route("/metrics", get(metrics_page))
        .with_state(Pages {
            source,
            base: Arc::from(base),
        })
}

/// A running UI server; stops when dropped.
#[derive(Debug)]
pub(crate) struct UiServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl UiServer {
    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `request` carries `token` (as a bearer token, a `token` query parameter or the
/// `kiln_token` cookie a token in the query sets).
fn authorized(request: &Request, token: &str) -> bool {
    let header = |name| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let bearer = header(header::AUTHORIZATION)
        .iter()
        .any(|v| v.strip_prefix("Bearer ") == Some(token));
    let cookie = header(header::COOKIE).iter().any(|v| {
        v.split(';')
            .any(|c| c.trim().strip_prefix("kiln_token=") == Some(token))
    });
    bearer || cookie || query_token(request).as_deref() == Some(token)
}

fn query_token(request: &Request) -> Option<String> {
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token=").map(str::to_string))
}

/// Serves `router` on `host:port` (port 0: any free port; a taken port: the next of 16, as
/// Spark's UI does). Off loopback, every request must carry `token`.
///
/// # Errors
/// A host that is not an IP address, no free port, or a host off loopback without a token.
pub(crate) async fn serve(
    host: &str,
    port: u16,
    router: Router,
    token: Option<String>,
) -> Result<UiServer> {
    let ip: IpAddr = host.parse().map_err(|_| EngineError::InvalidParameter {
        name: "kiln.ui.host",
        reason: format!("not an IP address: '{host}'"),
    })?;
    let router = if ip.is_loopback() {
        router
    } else {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(EngineError::InvalidParameter {
                name: "kiln.ui.host",
                reason: format!(
                    "the UI on {host} (off loopback) needs an auth token: set kiln.auth_token or $KILN_AUTH_TOKEN"
                ),
            });
        };
        let token: Arc<str> = Arc::from(token);
        router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
            let token = Arc::clone(&token);
            async move {
                if !authorized(&request, &token) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        "the Kiln UI needs the session's auth token: ?token=…, or Authorization: Bearer …",
                    )
                        .into_response();
                }
                let set_cookie = query_token(&request).is_some();
                let mut response = next.run(request).await;
                if set_cookie {
                    if let Ok(v) = format!("kiln_token={token}; HttpOnly; SameSite=Strict; Path=/").parse() {
                        response.headers_mut().insert(header::SET_COOKIE, v);
                    }
                }
                response
            }
        }))
    };
    let tries = if port == 0 { 1 } else { 16 };
    let mut last = None;
    for offset in 0..tries {
        let candidate = SocketAddr::new(ip, port.saturating_add(offset));
        match tokio::net::TcpListener::bind(candidate).await {
            Ok(listener) => {
                let addr = listener.local_addr()?;
                let task = tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, router).await {
                        tracing::warn!(error = %e, "the UI server stopped");
                    }
                });
                return Ok(UiServer { addr, task });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(EngineError::InvalidParameter {
        name: "kiln.ui.port",
        reason: format!(
            "cannot listen on {host}:{port}{}: {}",
            if tries > 1 {
                " or the 15 ports after it"
            } else {
                ""
            },
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    })
}

/// The live source: the session's status store, models and metrics.
pub(crate) struct Live {
    pub(crate) status: Arc<crate::status::Status>,
    pub(crate) prometheus: Arc<crate::prom::Prometheus>,
    pub(crate) models: Box<dyn Fn() -> Vec<ModelRow> + Send + Sync>,
    /// How long since each remote executor was last heard from.
    pub(crate) heard: Box<dyn Fn() -> Vec<(String, std::time::Duration)> + Send + Sync>,
}

impl Source for Live {
    fn state(&self) -> State {
        let mut state = self.status.snapshot();
        for (id, silent) in (self.heard)() {
            // The latest member of that name (a restarted executor rejoins under it).
            if let Some(e) = state.executors.iter_mut().rev().find(|e| e.id == id) {
                e.heard = Some(silent.as_secs_f64());
            }
        }
        state
    }

    fn models(&self) -> Vec<ModelRow> {
        (self.models)()
    }

    fn metrics(&self) -> Option<String> {
        Some(self.prometheus.render())
    }
}

/// A finished (or interrupted) session read from its event log.
pub(crate) struct Replayed(pub(crate) State);

impl Source for Replayed {
    fn state(&self) -> State {
        self.0.clone()
    }

    fn models(&self) -> Vec<ModelRow> {
        self.0
            .fits
            .iter()
            .filter_map(|f| {
                let report = f.report.as_ref()?;
                Some(ModelRow {
                    name: f.id.clone(),
                    algorithm: f.algorithm.clone(),
                    features: Vec::new(),
                    label: String::new(),
                    params: String::new(),
                    report: Some(report.rows()),
                })
            })
            .collect()
    }

    fn metrics(&self) -> Option<String> {
        None
    }
}

/// The router of `kiln history`: the list of sessions at `/`, each session's pages under
/// `/s/<session>/`.
pub(crate) fn history(states: Vec<State>) -> Router {
    let list = Arc::new(states.clone());
    let mut router = Router::new().route(
        "/",
        get(move || {
            let list = Arc::clone(&list);
            async move { Html(pages::sessions(&list)) }
        }),
    );
    for state in states {
        let base = format!("/s/{}", state.session);
        let pages = session_pages(Arc::new(Replayed(state)), &base);
        router = router.nest(&base, pages);
    }
    router
}

/// An executor's `/metrics` (and nothing else), from `registry`.
pub(crate) fn executor_metrics(registry: prometheus_client::registry::Registry) -> Router {
    let registry = Arc::new(registry);
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = Arc::clone(&registry);
            async move { metrics_response(crate::prom::render(&registry)) }
        }),
    )
}
