//! `GET /api/v1/diagnostics` and `GET /api/v1/diagnostics/{name}`: the
//! bundles the shipped `diagnostics` hook writes under
//! `<state-dir>/diagnostics`, listed newest first and served for download,
//! so an alert or a hook's log line can link to one. They hold journal
//! text: both routes need the token whatever `protect-reads` says.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, ApiState};
use crate::status::rfc3339;

/// The folder under the state directory.
pub const DIR: &str = "diagnostics";

/// The largest bundle served (the hook caps the folder at 20 MiB by default).
const MAX_BYTES: u64 = 256 << 20;

/// One bundle.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub name: String,
    pub bytes: u64,
    pub written: String,
}

/// Whether `name` is a bundle's name: `….tar.gz` of letters, digits, `.`,
/// `_` and `-`, not hidden. Nothing else under the folder is served.
fn is_bundle(name: &str) -> bool {
    name.len() <= 200
        && name.ends_with(".tar.gz")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn folder(state: &ApiState) -> PathBuf {
    Path::new(&state.snapshot.borrow().state_dir).join(DIR)
}

/// The bundles in `dir`, newest first; none when it does not exist.
pub fn bundles(dir: &Path) -> Vec<Bundle> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(SystemTime, Bundle)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            (is_bundle(&name) && meta.is_file()).then(|| {
                let at = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let bundle = Bundle {
                    name,
                    bytes: meta.len(),
                    written: rfc3339(at),
                };
                (at, bundle)
            })
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.name.cmp(&a.1.name)));
    found.into_iter().map(|(_, b)| b).collect()
}

/// `GET /api/v1/diagnostics`
pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let dir = folder(&state);
    let listed = tokio::task::spawn_blocking(move || bundles(&dir))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(serde_json::json!({ "bundles": listed })).into_response())
}

/// `GET /api/v1/diagnostics/{name}`
pub(super) async fn one(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    if !is_bundle(&name) {
        return Err(ApiError::NotFound(format!(
            "no diagnostics bundle named {name:?}: names end in .tar.gz (GET /api/v1/diagnostics lists them)"
        )));
    }
    let path = folder(&state).join(&name);
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !meta.is_file() || meta.len() > MAX_BYTES {
            return Ok(None);
        }
        std::fs::read(&path).map(Some)
    })
    .await
    .map_err(|_| ApiError::Unavailable)?;
    match read {
        Ok(Some(bytes)) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/gzip"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(response)
        }
        Ok(None) => Err(ApiError::NotFound(format!(
            "no diagnostics bundle named {name:?} (GET /api/v1/diagnostics lists them)"
        ))),
        Err(e) => Err(ApiError::Unavailable).inspect_err(|_| {
            tracing::warn!(error = %e, bundle = %name, "cannot read a diagnostics bundle");
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_bundle_names_are_served() {
        assert!(is_bundle("20261204T101500Z-camera.tar.gz"));
        for bad in [
            "../api.token",
            ".work.tar.gz",
            "a/b.tar.gz",
            "history.db",
            "x.tar.gz\n",
            "%2e.tar.gz",
        ] {
            assert!(!is_bundle(bad), "{bad}");
        }
    }

    #[test]
    fn bundles_are_listed_newest_first_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, secs: u64| {
            let p = dir.path().join(name);
            std::fs::write(&p, name).unwrap();
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        at("old-camera.tar.gz", 1_000);
        at("new-camera.tar.gz", 2_000);
        at("notes.txt", 3_000);
        std::fs::create_dir(dir.path().join("dir.tar.gz")).unwrap();
        let names: Vec<String> = bundles(dir.path()).into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["new-camera.tar.gz", "old-camera.tar.gz"]);
        assert!(bundles(&dir.path().join("absent")).is_empty());
    }
}
