//! Who may call what. Every changing call needs the bearer token, and
//! comes from no other site: a request whose `Origin` is not the API's own
//! or whose `Host` is a name the API was not given is refused (a page in
//! the kiosk browser cannot drive the watchdog, nor can a name rebound to
//! 127.0.0.1). With `protect-reads`, every read needs the token too but
//! `/livez`, and `/health` when `public-health` says the platform polls it
//! without one.
//!
//! Without `[api] token-file` the daemon makes a random token at
//! `<state-dir>/api.token` (0600) on its first start, and the local CLI
//! reads it from there. The token file is read at every call, so a rotated
//! token applies at once; a reload that names a token file that cannot be
//! used is refused.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tokio::sync::watch;

use super::ApiError;
use crate::config::Api;

/// The token file made when none is configured, in the state directory.
pub const GENERATED_TOKEN: &str = "api.token";

/// What the guard enforces; replaced at a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The token's file: `[api] token-file`, or the generated one.
    pub token_file: PathBuf,
    /// Whether `token_file` is the generated one.
    pub generated: bool,
    /// `[api] protect-reads`.
    pub protect_reads: bool,
    /// `[api] public-health`.
    pub public_health: bool,
    /// `[api] allowed-hosts`: names a request's `Host` may carry besides
    /// an IP address and `localhost`.
    pub allowed_hosts: Vec<String>,
}

impl Access {
    /// The access a configuration asks for. Makes the generated token when
    /// no token file is configured and none was made yet; fails, naming the
    /// file, when the token cannot be used.
    pub fn for_config(api: &Api, state_dir: &Path) -> Result<Access, String> {
        let (token_file, generated) = match &api.token_file {
            Some(file) => (file.clone(), false),
            None => (ensure_token(state_dir)?, true),
        };
        read_token(&token_file)?;
        Ok(Access {
            token_file,
            generated,
            protect_reads: api.protect_reads,
            public_health: api.public_health,
            allowed_hosts: api.allowed_hosts.clone(),
        })
    }
}

/// The token file the local CLI uses for a configuration: the configured
/// one, else the generated one in the state directory.
pub fn token_file_for(api: &Api, state_dir: &Path) -> PathBuf {
    api.token_file
        .clone()
        .unwrap_or_else(|| state_dir.join(GENERATED_TOKEN))
}

/// Makes `<state_dir>/api.token` (0600, 32 random bytes in hex) unless it
/// exists. Returns its path.
pub fn ensure_token(state_dir: &Path) -> Result<PathBuf, String> {
    let path = state_dir.join(GENERATED_TOKEN);
    if path.exists() {
        return Ok(path);
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the API token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create the API token {}: {e}", path.display()))?;
    writeln!(file, "{token}")
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write the API token {}: {e}", path.display()))?;
    Ok(path)
}

/// The token: the first line of a secret file (see [`crate::trust`]).
pub fn read_token(file: &Path) -> Result<String, String> {
    crate::trust::secret_file(file)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the API token {}: {e}", file.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(format!("the API token file {} is empty", file.display()));
    }
    Ok(token)
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: `/livez`, and reads without `protect-reads`.
    Nothing,
    /// The token.
    Token,
    /// The token, from this site: a changing call.
    TokenSameSite,
}

fn need(access: &Access, method: &Method, path: &str) -> Need {
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if !reads {
        return Need::TokenSameSite;
    }
    // Diagnostics bundles hold journal text: never open.
    if path == "/api/v1/diagnostics" || path.starts_with("/api/v1/diagnostics/") {
        return Need::Token;
    }
    // The dashboard's page and assets hold no data: the page asks for the
    // token before it reads anything.
    let page = path == "/" || path.starts_with("/assets/");
    let open = path == "/livez"
        || page
        || !access.protect_reads
        || (path == "/health" && access.public_health);
    if open { Need::Nothing } else { Need::Token }
}

/// The middleware: refuses a request that may not pass.
pub async fn guard(
    State(access): State<watch::Receiver<Access>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(length) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > super::MAX_BODY as u64
    {
        // Answered before a byte of it is read.
        return ApiError::TooLarge(format!(
            "the body is {length} bytes; the API takes at most {} KiB",
            super::MAX_BODY / 1024
        ))
        .into_response();
    }
    let admitted = admit(
        &access.borrow(),
        request.method(),
        request.uri().path(),
        request.headers(),
    );
    match admitted {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn admit(
    access: &Access,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let need = need(access, method, path);
    if need == Need::Nothing {
        return Ok(());
    }
    if need == Need::TokenSameSite {
        same_site(access, headers)?;
    }
    let expected = read_token(&access.token_file).map_err(|why| {
        tracing::error!(file = %access.token_file.display(), error = %why, "the API token cannot be used; refusing calls that need it");
        ApiError::Forbidden("the API token cannot be read; see the watchdog's log".into())
    })?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Compare in constant time: the token guards restarts and reboots.
    match given {
        Some(g)
            if g.len() == expected.len()
                && g.bytes()
                    .zip(expected.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0 =>
        {
            Ok(())
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// The host part of `host[:port]` (an IPv6 address keeps its brackets off).
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Whether a `Host` names this API: an IP address, `localhost`, or an
/// allowed name. A name rebound by DNS to this machine is none of these.
fn host_allowed(access: &Access, authority: &str) -> bool {
    let host = host_of(authority);
    host.parse::<std::net::IpAddr>().is_ok()
        || host.eq_ignore_ascii_case("localhost")
        || access
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
}

/// Refuses a changing call from another site or for another name.
fn same_site(access: &Access, headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(host) = text(header::HOST) else {
        return Err(ApiError::Forbidden(
            "a changing call needs a Host header".into(),
        ));
    };
    if !host_allowed(access, host) {
        return Err(ApiError::Forbidden(format!(
            "Host \"{}\" is not this watchdog's address (add it to [api] allowed-hosts if it is)",
            host.escape_debug()
        )));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if authority != Some(host) {
            return Err(ApiError::Forbidden(format!(
                "a changing call from another site (Origin \"{}\") is refused",
                origin.escape_debug()
            )));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Err(ApiError::Forbidden(format!(
            "a changing call from another site (Sec-Fetch-Site \"{}\") is refused",
            site.escape_debug()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn access() -> Access {
        Access {
            token_file: PathBuf::from("/nonexistent"),
            generated: true,
            protect_reads: false,
            public_health: false,
            allowed_hosts: vec!["rvm-017.vpn".into()],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn which_routes_need_what() {
        let mut a = access();
        assert_eq!(
            need(&a, &Method::POST, "/api/v1/reload"),
            Need::TokenSameSite
        );
        assert_eq!(need(&a, &Method::GET, "/health"), Need::Nothing);
        assert_eq!(need(&a, &Method::GET, "/api/v1/targets"), Need::Nothing);
        a.protect_reads = true;
        assert_eq!(need(&a, &Method::GET, "/livez"), Need::Nothing);
        assert_eq!(need(&a, &Method::GET, "/health"), Need::Token);
        assert_eq!(need(&a, &Method::GET, "/metrics"), Need::Token);
        assert_eq!(need(&a, &Method::GET, "/api/v1/targets"), Need::Token);
        assert_eq!(need(&a, &Method::GET, "/anything/else"), Need::Token);
        a.public_health = true;
        assert_eq!(need(&a, &Method::GET, "/health"), Need::Nothing);
        assert_eq!(need(&a, &Method::GET, "/metrics"), Need::Token);
    }

    #[test]
    fn a_foreign_host_or_origin_is_refused() {
        let a = access();
        for ok in [
            headers(&[("host", "127.0.0.1:9184")]),
            headers(&[("host", "[::1]:9184")]),
            headers(&[("host", "localhost:9184")]),
            headers(&[("host", "RVM-017.vpn:9184")]),
            headers(&[("host", "10.8.0.17")]),
            headers(&[
                ("host", "127.0.0.1:9184"),
                ("origin", "http://127.0.0.1:9184"),
            ]),
            headers(&[
                ("host", "127.0.0.1:9184"),
                ("sec-fetch-site", "same-origin"),
            ]),
        ] {
            assert!(same_site(&a, &ok).is_ok(), "{ok:?}");
        }
        for bad in [
            headers(&[]),
            headers(&[("host", "evil.example:9184")]),
            headers(&[("host", "127.0.0.1.nip.io:9184")]),
            headers(&[
                ("host", "127.0.0.1:9184"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:9184"),
                ("origin", "http://localhost:8080"),
            ]),
            headers(&[("host", "127.0.0.1:9184"), ("origin", "null")]),
            headers(&[("host", "127.0.0.1:9184"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "127.0.0.1:9184"), ("sec-fetch-site", "same-site")]),
        ] {
            assert!(
                matches!(same_site(&a, &bad), Err(ApiError::Forbidden(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_generated_token_is_made_once_root_only_and_random() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = ensure_token(dir.path()).unwrap();
        let first = read_token(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ensure_token(dir.path()).unwrap(), path);
        assert_eq!(
            read_token(&path).unwrap(),
            first,
            "a second start keeps the token"
        );
        let other = tempfile::tempdir().unwrap();
        let second = read_token(&ensure_token(other.path()).unwrap()).unwrap();
        assert_ne!(first, second);
    }
}
