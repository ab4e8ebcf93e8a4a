//! The `myrvm` probe: one read-only GET to the MyRVM platform with the
//! machine's API key, its answer classified.
//!
//! The key is read from `[platform] api-key-file` at every run (a rotated
//! key is picked up) and sent as `X-RVM-API-KEY`; it never appears in a
//! policy, a log line or an outcome. The probe never calls the edge
//! endpoints that change state: the edge heartbeat hands out the platform's
//! commands once, to whoever calls it, and they belong to the edge client.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::redirect::{self, Failure};
use super::{Outcome, Status};
use crate::config::{Platform, Redirects};

/// How the platform answered, or why it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// 2xx.
    Ok,
    /// 401: the key is missing or wrong.
    BadKey,
    /// 403: the machine is blocked or suspended.
    Blocked,
    /// 422: the platform refused the request's input.
    Validation,
    /// 5xx.
    ServerError,
    /// Another status (a 404 says the path is wrong).
    Unexpected,
    /// No answer in time.
    Timeout,
    /// The platform's name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The connection was refused or dropped.
    Connect,
}

impl Class {
    /// The class as written in outcomes.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::BadKey => "bad key",
            Class::Blocked => "blocked",
            Class::Validation => "validation",
            Class::ServerError => "server error",
            Class::Unexpected => "unexpected answer",
            Class::Timeout => "timeout",
            Class::Dns => "DNS",
            Class::Tls => "TLS",
            Class::Connect => "cannot connect",
        }
    }

    /// The class of an HTTP status.
    pub fn of_status(code: u16) -> Class {
        match code {
            200..=299 => Class::Ok,
            401 => Class::BadKey,
            403 => Class::Blocked,
            422 => Class::Validation,
            500..=599 => Class::ServerError,
            _ => Class::Unexpected,
        }
    }
}

/// Endpoints that change state on the platform: never called.
const STATEFUL: [&str; 4] = ["heartbeat", "handshake", "deposit", "sync-offline"];

/// The class of a request that got no HTTP answer, and one line saying why
/// (the innermost cause, e.g. "invalid peer certificate: UnknownIssuer").
pub fn classify_error(e: &reqwest::Error) -> (Class, String) {
    let mut tls = false;
    let mut dns = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(err) = source {
        tls |= is_tls(err);
        let text = err.to_string();
        if text.starts_with("dns error") || text.contains("failed to lookup address") {
            dns = true;
        }
        innermost = text;
        source = err.source();
    }
    let class = if e.is_timeout() {
        Class::Timeout
    } else if dns {
        Class::Dns
    } else if tls {
        Class::Tls
    } else {
        Class::Connect
    };
    (class, innermost)
}

/// Whether an error is rustls's, also when wrapped in I/O errors (the
/// connector wraps it twice; `io::Error::source` skips the wrapped error).
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    if err.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    match err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => is_tls(inner),
        None => false,
    }
}

/// One line for a failed request: what kind of failure, and its cause.
pub fn describe(e: &reqwest::Error) -> String {
    let (class, why) = classify_error(e);
    format!("{}: {why}", class.as_str())
}

/// Reads the API key: the file's first line. A file that others may read
/// is reported, not refused: the probe still runs.
pub(crate) fn read_key(platform: &Platform) -> Result<(Option<String>, Option<String>), String> {
    let Some(path) = &platform.api_key_file else {
        return Ok((None, None));
    };
    let cannot =
        |e: std::io::Error| format!("cannot read the API key file {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let mode = file.metadata().map_err(cannot)?.permissions().mode() & 0o777;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(cannot)?;
    let key = text.lines().next().unwrap_or("").trim().to_owned();
    if key.is_empty() {
        return Err(format!("the API key file {} is empty", path.display()));
    }
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "the API key file {} may be read by others (mode {mode:04o}); make it 0600",
            path.display()
        )
    });
    Ok((Some(key), warning))
}

/// The platform's `error_code` in a JSON error body, if any.
fn error_code(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("error_code")?.as_str().map(str::to_owned)
}

/// Refuses a URL whose path is an edge endpoint that changes state.
fn guard(url: &reqwest::Url) -> Result<(), String> {
    let lower = url.path().to_ascii_lowercase();
    if STATEFUL.iter().any(|w| lower.contains(w)) {
        return Err(format!(
            "refusing {url}: an edge endpoint that changes state on the platform"
        ));
    }
    Ok(())
}

/// One request to `base-url` + `path`, classified; the latency is the
/// observed value. The key is sent only to the base URL's origin: a
/// redirect elsewhere is never followed, and one to the same origin only
/// with `follow-redirects = "same-origin"`; every URL requested passes the
/// guard against stateful endpoints.
pub async fn run(
    platform: Option<&Platform>,
    path: &str,
    redirects: Redirects,
    http: &reqwest::Client,
    timeout: Duration,
) -> Outcome {
    let Some(platform) = platform else {
        return Outcome::new(
            Status::Fail,
            "no [platform] in watchdog.toml: the myrvm probe has nowhere to ask",
        );
    };
    let url = format!("{}{path}", platform.base_url.trim_end_matches('/'));
    let lower = path.to_ascii_lowercase();
    if STATEFUL.iter().any(|w| lower.contains(w)) {
        return Outcome::new(
            Status::Fail,
            format!("refusing {path}: an edge endpoint that changes state on the platform"),
        );
    }
    let (key, key_warning) = match read_key(platform) {
        Ok(k) => k,
        Err(e) => return Outcome::new(Status::Fail, e),
    };
    let build = |c: &reqwest::Client, u: reqwest::Url| {
        let mut request = c
            .get(u)
            .header("Accept", "application/json")
            .timeout(timeout.min(platform.timeout));
        if let Some(key) = &key {
            request = request.header("X-RVM-API-KEY", key);
        }
        request
    };
    let clock = Instant::now();
    let (class, detail) = match redirect::send(http, &url, redirects, build, guard).await {
        Ok(answer) => {
            let code = answer.response.status().as_u16();
            let class = Class::of_status(code);
            let body = if class == Class::Ok {
                String::new()
            } else {
                answer.response.text().await.unwrap_or_default()
            };
            let mut detail = match error_code(&body) {
                Some(c) => format!("{code} {c}"),
                None => code.to_string(),
            };
            if answer.url.as_str() != url {
                detail.push_str(&format!(" from {}", answer.url));
            }
            if let Some(why) = answer.unfollowed {
                detail = why;
            }
            (class, detail)
        }
        Err(Failure::Request(e)) => classify_error(&e),
        Err(Failure::BadUrl(why) | Failure::Refused(why)) => (Class::Unexpected, why),
    };
    let ms = clock.elapsed().as_secs_f64() * 1000.0;
    let mut status = if class == Class::Ok {
        Status::Pass
    } else {
        Status::Fail
    };
    let mut output = format!("{}: {url} {detail} in {ms:.0} ms", class.as_str());
    if key.is_none() {
        output.push_str(" (no api-key-file set)");
    }
    if let Some(w) = key_warning {
        if status == Status::Pass {
            status = Status::Warn;
        }
        output.push_str("; ");
        output.push_str(&w);
    }
    Outcome::new(status, output).value(ms, "ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A platform stand-in on 127.0.0.1: answers by path, checks the key,
    /// and never answers on `/silent`. Stops when the test's runtime ends.
    async fn platform_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut n = 0;
                    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf[n..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => n += k,
                        }
                        if buf[0] == 0x16 {
                            // A TLS ClientHello: answer like a plain HTTP server does.
                            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
                            return;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let key_ok = head
                        .lines()
                        .any(|l| l.eq_ignore_ascii_case("x-rvm-api-key: s3cret"));
                    let (code, body) = match path.as_str() {
                        "/api/v1/silent" => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        _ if !key_ok => (
                            "401 Unauthorized",
                            r#"{"status":"error","message":"Invalid API key","error_code":"INVALID_API_KEY"}"#,
                        ),
                        "/api/v1/edge/config" => ("200 OK", r#"{"status":"success"}"#),
                        "/api/v1/blocked" => (
                            "403 Forbidden",
                            r#"{"status":"error","error_code":"MACHINE_BLOCKED"}"#,
                        ),
                        "/api/v1/broken" => ("500 Internal Server Error", "oops"),
                        _ => ("404 Not Found", "{}"),
                    };
                    let reply = format!(
                        "HTTP/1.1 {code}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        addr
    }

    fn platform(base: String, key_file: Option<PathBuf>) -> Platform {
        Platform {
            base_url: base,
            api_key_file: key_file,
            timeout: Duration::from_secs(5),
            legacy_endpoints: false,
            legacy_listen: crate::config::DEFAULT_LEGACY_LISTEN.parse().unwrap(),
            push: None,
            figures: Default::default(),
        }
    }

    fn key_file(dir: &std::path::Path, key: &str, mode: u32) -> PathBuf {
        let path = dir.join("api_key");
        std::fs::write(&path, format!("{key}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[tokio::test]
    async fn the_answers_are_classified() {
        crate::probe::install_tls();
        let addr = platform_server().await;
        let dir = tempfile::tempdir().unwrap();
        let good = platform(
            format!("http://{addr}/api/v1"),
            Some(key_file(dir.path(), "s3cret", 0o600)),
        );
        let http = reqwest::Client::new();
        let t = Duration::from_secs(5);

        let o = run(Some(&good), "/edge/config", Redirects::None, &http, t).await;
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(
            o.output
                .starts_with(&format!("ok: http://{addr}/api/v1/edge/config 200 in ")),
            "{}",
            o.output
        );
        assert_eq!(o.observed_unit, Some("ms"));
        assert!(!o.output.contains("s3cret"));

        let o = run(Some(&good), "/blocked", Redirects::None, &http, t).await;
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.output.starts_with("blocked: ") && o.output.contains(" 403 MACHINE_BLOCKED in "),
            "{}",
            o.output
        );

        let o = run(Some(&good), "/broken", Redirects::None, &http, t).await;
        assert!(
            o.output.starts_with("server error: ") && o.output.contains(" 500 in "),
            "{}",
            o.output
        );

        let o = run(Some(&good), "/nothing-here", Redirects::None, &http, t).await;
        assert!(
            o.output.starts_with("unexpected answer: ") && o.output.contains(" 404 in "),
            "{}",
            o.output
        );

        let silent = platform(good.base_url.clone(), good.api_key_file.clone());
        let o = run(
            Some(&silent),
            "/silent",
            Redirects::None,
            &http,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(o.status, Status::Fail);
        assert!(o.output.starts_with("timeout: "), "{}", o.output);

        let wrong = platform(
            good.base_url.clone(),
            Some(key_file(dir.path(), "wrong", 0o600)),
        );
        let o = run(Some(&wrong), "/edge/config", Redirects::None, &http, t).await;
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.output.starts_with("bad key: ") && o.output.contains(" 401 INVALID_API_KEY in "),
            "{}",
            o.output
        );
        assert!(!o.output.contains("wrong"));
    }

    #[tokio::test]
    async fn tls_dns_and_key_file_troubles_are_told_apart() {
        crate::probe::install_tls();
        let addr = platform_server().await;
        let dir = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let t = Duration::from_secs(5);

        // A plain-HTTP server asked over TLS.
        let tls = platform(
            format!("https://{addr}/api/v1"),
            Some(key_file(dir.path(), "s3cret", 0o600)),
        );
        let o = run(Some(&tls), "/edge/config", Redirects::None, &http, t).await;
        assert!(o.output.starts_with("TLS: "), "{}", o.output);

        // A key file others may read: still probed, but a warning.
        let open = platform(
            format!("http://{addr}/api/v1"),
            Some(key_file(dir.path(), "s3cret", 0o644)),
        );
        let o = run(Some(&open), "/edge/config", Redirects::None, &http, t).await;
        assert_eq!(o.status, Status::Warn, "{}", o.output);
        assert!(
            o.output
                .contains("may be read by others (mode 0644); make it 0600"),
            "{}",
            o.output
        );

        // A missing key file names the file.
        let missing = platform(open.base_url.clone(), Some(dir.path().join("nope")));
        let o = run(Some(&missing), "/edge/config", Redirects::None, &http, t).await;
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.output.starts_with("cannot read the API key file ") && o.output.contains("nope"),
            "{}",
            o.output
        );

        // The edge heartbeat is never called, whatever the policy says.
        let o = run(Some(&open), "/edge/heartbeat", Redirects::None, &http, t).await;
        assert!(
            o.output.starts_with("refusing /edge/heartbeat"),
            "{}",
            o.output
        );
    }

    /// A server on 127.0.0.1 answering every request with `reply` (a raw
    /// head), recording the request heads it saw.
    async fn answering(
        reply: String,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).to_string());
                let _ = sock
                    .write_all(
                        format!("{reply}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .as_bytes(),
                    )
                    .await;
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn the_key_never_follows_a_redirect_to_another_origin_nor_to_the_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let key = Some(key_file(dir.path(), "s3cret", 0o600));
        // The daemon's own client, as the probes get it.
        let http = crate::probe::Context::new(PathBuf::from("/")).http;
        let t = Duration::from_secs(5);
        let (other, other_seen) = answering("HTTP/1.1 200 OK".into()).await;
        let (home, _) = answering(format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{other}/api/v1/edge/heartbeat"
        ))
        .await;
        let p = platform(format!("http://{home}/api/v1"), key.clone());
        for policy in [Redirects::None, Redirects::SameOrigin] {
            let o = run(Some(&p), "/edge/config", policy, &http, t).await;
            assert_eq!(o.status, Status::Fail, "{}", o.output);
            assert!(
                o.output.contains(&format!(
                    "redirect to http://{other}/api/v1/edge/heartbeat not followed"
                )),
                "{}",
                o.output
            );
        }
        assert!(
            other_seen.lock().unwrap().is_empty(),
            "the key went elsewhere"
        );

        // The same origin, followed when asked: the guard still refuses the heartbeat.
        let (same, same_seen) =
            answering("HTTP/1.1 302 Found\r\nlocation: /api/v1/edge/heartbeat".into()).await;
        let p = platform(format!("http://{same}/api/v1"), key);
        let o = run(Some(&p), "/edge/config", Redirects::SameOrigin, &http, t).await;
        assert_eq!(o.status, Status::Fail, "{}", o.output);
        assert!(o.output.contains("refusing http://"), "{}", o.output);
        let heads = same_seen.lock().unwrap().clone();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(
            heads[0].starts_with("GET /api/v1/edge/config "),
            "{heads:?}"
        );
    }

    /// A resolver that knows no name, as a machine whose DNS is broken.
    struct NoNames;

    impl reqwest::dns::Resolve for NoNames {
        fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let name = name.as_str().to_owned();
            Box::pin(async move { Err(format!("{name}: no such name").into()) })
        }
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_dns() {
        crate::probe::install_tls();
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(NoNames))
            .build()
            .unwrap();
        let p = platform("https://myrvm.example/api/v1".into(), None);
        let o = run(
            Some(&p),
            "/edge/config",
            Redirects::None,
            &http,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(o.status, Status::Fail);
        assert!(o.output.starts_with("DNS: "), "{}", o.output);
        assert!(o.output.contains("myrvm.example"), "{}", o.output);
    }

    #[test]
    fn statuses_map_to_classes() {
        assert_eq!(Class::of_status(204), Class::Ok);
        assert_eq!(Class::of_status(401), Class::BadKey);
        assert_eq!(Class::of_status(403), Class::Blocked);
        assert_eq!(Class::of_status(422), Class::Validation);
        assert_eq!(Class::of_status(503), Class::ServerError);
        assert_eq!(Class::of_status(404), Class::Unexpected);
    }
}
