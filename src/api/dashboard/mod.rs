//! The dashboard: one page at `/`, its assets under `/assets/`, all
//! embedded in the binary (an RVM often has no internet). It reads the
//! daemon's own API and live stream; the page and its assets need no
//! token (they hold no data), the API calls behind them do as the API
//! says. A Content-Security-Policy keeps the page from loading or calling
//! anything but the daemon.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use axum::extract::State;

use super::error::Segments;
use super::{ApiError, ApiState};

/// What the page may load and call: the daemon only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/assets/`, media type and bytes.
struct Asset {
    name: &'static str,
    media: &'static str,
    bytes: &'static [u8],
}

/// Every asset. uPlot is vendored unmodified (see `assets/vendor/README`).
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        media: "text/html; charset=utf-8",
        bytes: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "app.js",
        media: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "style.css",
        media: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/style.css"),
    },
    Asset {
        name: "uplot.js",
        media: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uplot-1.6.32.min.js"),
    },
    Asset {
        name: "uplot.css",
        media: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uplot-1.6.32.min.css"),
    },
    Asset {
        name: "uplot-LICENSE.txt",
        media: "text/plain; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uplot-LICENSE"),
    },
];

/// Each asset gzipped once, on first use; empty if that failed.
fn gzipped(i: usize) -> &'static [u8] {
    static GZ: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    &GZ.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| super::gzip(a.bytes, true).unwrap_or_default())
            .collect()
    })[i]
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let mut response = if super::wants_gzip(headers) && !gzipped(i).is_empty() {
        super::gzipped_response(gzipped(i))
    } else {
        asset.bytes.into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // The binary is the version: a new one may bring new assets.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `[api] dashboard = false`: the page and its assets answer 404.
fn turned_off(state: &ApiState) -> Option<ApiError> {
    (!state.snapshot.borrow().config.dashboard.enabled).then(|| {
        ApiError::NotFound(
            "the dashboard is turned off on this machine (`[api] dashboard = false` in watchdog.toml)"
                .into(),
        )
    })
}

/// `GET /`: the page.
pub(super) async fn page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match turned_off(&state) {
        Some(e) => e.into_response(),
        None => serve(0, &headers),
    }
}

/// `GET /api/v1/dashboard`: the site's view (tiles, charts and targets in
/// order, the KPIs), which the page starts from.
pub(super) async fn view(State(state): State<ApiState>) -> Response {
    let view = state.snapshot.borrow().config.dashboard.clone();
    axum::Json(view).into_response()
}

/// `GET /assets/{file}`.
pub(super) async fn asset(
    State(state): State<ApiState>,
    Segments(name): Segments<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(e) = turned_off(&state) {
        return Err(e);
    }
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => Ok(serve(i, &headers)),
        None => Err(ApiError::NotFound(format!(
            "no dashboard asset {:?}",
            name.escape_debug().to_string()
        ))),
    }
}

/// The bytes a browser fetches on the first load, gzipped: the page and
/// every asset it names.
#[cfg(test)]
pub(super) fn first_load_gzipped() -> usize {
    (0..ASSETS.len())
        .filter(|i| ASSETS[*i].name != "uplot-LICENSE.txt")
        .map(|i| gzipped(i).len())
        .sum()
}

/// Every asset's name and bytes, for the tests.
#[cfg(test)]
pub(super) fn assets() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    ASSETS.iter().map(|a| (a.name, a.bytes))
}
