//! Every route through `router(state)` with `oneshot`: what it reads from
//! the snapshot, how it guards changing calls, and how the core loop's
//! answers map to status codes. A task stands in for the core loop and
//! answers commands the way it does.

use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use super::*;
use crate::command::{OperationDone, OperationError, ReloadOutcome};
use crate::config::diag::SourceFile;
use crate::config::{self, validate};
use crate::status::{ConfigView, IdentityView};

fn snapshot() -> Snapshot {
    let src = SourceFile::new(
        "<embedded>/watchdog.toml",
        config::EMBEDDED_CONFIG.to_owned(),
    );
    let mut out = Vec::new();
    let raw = src.deserialize(&mut out, |_| None).unwrap();
    let mut config = validate::config(&src, raw, &mut out);
    let policy = SourceFile::new(
        "edge.toml",
        "[target]\nname = \"edge\"\nunit = \"myrvm-edge.service\"\n".to_owned(),
    );
    let raw = policy.deserialize(&mut out, |_| None).unwrap();
    config.targets = vec![validate::policy(&policy, raw, &config, &mut out).unwrap()];
    Snapshot {
        identity: IdentityView {
            name: "RVM-017".into(),
            hardware_id: Some("hw-17".into()),
            site: None,
        },
        started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_600_000),
        config: ConfigView::new(&config, 3, 0, "/etc/rvm-watchdog/watchdog.toml".into()),
        rejected_reload: None,
        last_tick: Instant::now(),
        tick_every: Duration::from_secs(1),
        state_dir: "/var/lib/rvm-watchdog".into(),
        log_destination: "journald",
        supervisor: None,
        units: Default::default(),
        accounting: Default::default(),
        ladders: Default::default(),
        safe_mode: None,
        previous_boot: None,
        processes: Default::default(),
        probes: Default::default(),
        last_actions: Default::default(),
        reboots: Vec::new(),
    }
}

/// The open alerts of [`full_snapshot`]'s edge: acknowledged, held back by
/// its failing dependency.
fn open_alerts() -> crate::alert::task::OpenByTarget {
    [(
        "edge".to_owned(),
        crate::alert::task::OpenAlerts {
            count: 1,
            acknowledged_by: Some("ana".into()),
            suppressed_by: Some("usb-bus".into()),
        },
    )]
    .into()
}

/// The token the test routers want.
const TOKEN: &str = "s3cret";

/// A router on `snapshot` with the default access (token [`TOKEN`]).
fn app(snapshot: Snapshot) -> Router {
    app_with(snapshot, |_| {})
}

/// A router on `snapshot`, its access changed by `change`, with a
/// stand-in core loop answering commands. The token file lives as long as
/// the stand-in.
fn app_with(snapshot: Snapshot, change: impl FnOnce(&mut Access)) -> Router {
    app_on(snapshot, change, None)
}

/// [`app_with`] over a state store.
fn app_on(
    snapshot: Snapshot,
    change: impl FnOnce(&mut Access),
    store: Option<crate::store::StoreThread>,
) -> Router {
    app_full(
        watch::Sender::new(snapshot).subscribe(),
        change,
        store,
        None,
    )
}

/// The event path the stand-in core loop answers observers from.
type Shared = std::sync::Arc<std::sync::Mutex<crate::event::Events>>;

/// [`app_on`] whose stand-in answers observers from `events`.
fn app_full(
    snapshot: watch::Receiver<Snapshot>,
    change: impl FnOnce(&mut Access),
    store: Option<crate::store::StoreThread>,
    events: Option<Shared>,
) -> Router {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut access = Access {
        token_file,
        generated: false,
        protect_reads: false,
        public_health: false,
        allowed_hosts: Vec::new(),
    };
    change(&mut access);
    let (commands, mut rx) = mpsc::channel::<Command>(4);
    tokio::spawn(async move {
        let _dir = dir;
        while let Some(command) = rx.recv().await {
            match command {
                Command::Operate {
                    target,
                    operation,
                    reply,
                } => {
                    let answer = match (target.as_str(), operation) {
                        ("edge", crate::command::Operation::Restart) => Ok(OperationDone {
                            ok: true,
                            detail: "restarted myrvm-edge.service".into(),
                            took: Duration::from_millis(18),
                        }),
                        ("edge", crate::command::Operation::RunStep(1)) => Ok(OperationDone {
                            ok: false,
                            detail: "hook exited with 2".into(),
                            took: Duration::from_millis(5),
                        }),
                        ("edge", crate::command::Operation::RunStep(n)) => {
                            Err(OperationError::NoSuchStep {
                                target,
                                steps: 1,
                                step: n,
                            })
                        }
                        ("edge", crate::command::Operation::Reset) => Err(OperationError::Stopping),
                        ("edge", crate::command::Operation::Pause(length)) => Ok(OperationDone {
                            ok: true,
                            detail: format!("paused for {length:?}"),
                            took: Duration::ZERO,
                        }),
                        ("edge", crate::command::Operation::Resume) => Err(
                            OperationError::NotApplicable("target \"edge\" is not paused".into()),
                        ),
                        ("probed", _) => Err(OperationError::NotApplicable(
                            "target \"probed\" has no unit to restart".into(),
                        )),
                        _ => Err(OperationError::UnknownTarget(target)),
                    };
                    let _ = reply.send(answer);
                }
                Command::Reload { reply } => {
                    let _ = reply.send(ReloadOutcome::Refused {
                        problems: vec!["edge.toml:3:8: error: bad".into()],
                    });
                }
                Command::Observe { reply } => {
                    if let Some(e) = &events {
                        let _ = reply.send(e.lock().unwrap().slurp_and_subscribe());
                    }
                }
                Command::Resume { after, reply } => {
                    if let Some(e) = &events {
                        let _ = reply.send(e.lock().unwrap().resume_after(after));
                    }
                }
            }
        }
    });
    let counters = watch::Sender::new(Counters::default());
    router(ApiState {
        snapshot,
        counters: counters.subscribe(),
        commands,
        access: watch::Sender::new(access).subscribe(),
        metrics: recorder(),
        alerts: alerts(),
        store,
        health: Default::default(),
        push: None,
    })
}

/// A real alert engine on the embedded configuration, with no store.
fn alerts() -> crate::alert::task::Handle {
    let config = crate::config::load(&crate::config::Sources::default())
        .config
        .expect("the embedded configuration loads");
    let (_events_tx, events) = mpsc::channel(4);
    let (metrics, _) = mpsc::channel(4);
    let latest = watch::channel(std::sync::Arc::new(
        crate::metrics::recorder::Latest::default(),
    ))
    .1;
    // The sender lives as long as the task: no event ever comes.
    std::mem::forget(_events_tx);
    crate::alert::task::spawn(crate::alert::task::Start {
        config,
        store: None,
        events: (Vec::new(), events),
        latest,
        metrics,
        safe_mode: false,
        failing: Default::default(),
        delivery: None,
        stop: tokio_util::sync::CancellationToken::new(),
    })
}

/// A stand-in recorder: keeps what is pushed, answers queries from it.
fn recorder() -> crate::metrics::recorder::Handle {
    use crate::metrics::recorder::{Latest, Request};
    let (requests, mut rx) = mpsc::channel::<Request>(4);
    let mut latest = Latest::default();
    latest.values.insert(
        crate::metrics::SeriesKey::new("rvm_host_memory_bytes", [("kind", "available")]).into(),
        (crate::metrics::Kind::Gauge, 1024.0),
    );
    let (latest_tx, latest_rx) = watch::channel(std::sync::Arc::new(latest));
    tokio::spawn(async move {
        let _keep = latest_tx;
        let mut kept: Vec<crate::metrics::Sample> = Vec::new();
        while let Some(request) = rx.recv().await {
            match request {
                Request::Ingest { samples, reply } => {
                    let n = samples.len();
                    kept.extend(samples);
                    let _ = reply.send(Ok(n));
                }
                Request::Series { reply } => {
                    let _ = reply.send(Ok(kept
                        .iter()
                        .map(|s| crate::metrics::history::SeriesInfo {
                            key: s.key.clone(),
                            kind: s.kind,
                            resolutions: vec![crate::metrics::history::Resolution::Raw],
                        })
                        .collect()));
                }
                Request::Query { reply, .. } => {
                    let _ = reply.send(Err("no history in this test".into()));
                }
                Request::Reconfigure(_) => {}
            }
        }
    });
    crate::metrics::recorder::Handle {
        requests,
        latest: latest_rx,
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String, String) {
    call_with(app, method, path, token, &[("host", "127.0.0.1:9184")]).await
}

/// [`call`] with these headers (and no `Host` unless among them).
async fn call_with(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let code = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        code,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn health_livez_metrics_and_targets_read_the_snapshot() {
    let app = app(snapshot());
    let (code, content_type, body) = call(&app, "GET", "/health", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(content_type, HEALTH_JSON);
    let health = json(&body);
    assert_eq!(health["status"], "pass");
    assert_eq!(health["serviceId"], "hw-17");
    assert_eq!(health["checks"]["config:targets"][0]["observedValue"], 1);
    assert_eq!(health["targets"][0]["name"], "edge");

    let (code, content_type, body) = call(&app, "GET", "/livez", None).await;
    assert_eq!((code, content_type.as_str()), (StatusCode::OK, HEALTH_JSON));
    assert_eq!(json(&body)["status"], "pass");

    let (code, content_type, body) = call(&app, "GET", "/metrics", None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert!(!body.contains("# EOF"), "{body}");
    let (code, content_type, open) = call_with(
        &app,
        "GET",
        "/metrics",
        None,
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.lines().any(|l| l == "rvm_watchdog_targets 1"),
        "{open}"
    );
    assert!(
        body.lines().any(|l| l == "rvm_watchdog_targets 1"),
        "{body}"
    );

    let (code, _, body) = call(&app, "GET", "/api/v1/targets", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        json(&body),
        health["targets"],
        "the same typed view as /health's"
    );
}

#[tokio::test]
async fn a_wedged_core_loop_fails_livez_and_health() {
    let mut s = snapshot();
    s.last_tick = Instant::now() - Duration::from_secs(30);
    let app = app(s);
    let (code, _, body) = call(&app, "GET", "/livez", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&body)["status"], "fail");
    let (code, _, body) = call(&app, "GET", "/health", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&body)["checks"]["core-loop:age"][0]["status"], "fail");
}

#[tokio::test]
async fn control_routes_answer_with_the_core_loops_result() {
    let app = app(snapshot());
    let cases: [(&str, StatusCode, Value); 10] = [
        (
            "/api/v1/targets/edge/restart",
            StatusCode::OK,
            json!({"ok": true, "detail": "restarted myrvm-edge.service", "tookMs": 18}),
        ),
        (
            "/api/v1/targets/edge/steps/1",
            StatusCode::BAD_GATEWAY,
            json!({"ok": false, "detail": "hook exited with 2", "tookMs": 5}),
        ),
        (
            "/api/v1/targets/edge/steps/4",
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "not-found", "message": "target \"edge\" has 1 ladder step(s); there is no step 4"}}),
        ),
        (
            "/api/v1/targets/probed/restart",
            StatusCode::CONFLICT,
            json!({"error": {"code": "not-applicable", "message": "target \"probed\" has no unit to restart"}}),
        ),
        (
            "/api/v1/targets/edge/reset",
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": {"code": "stopping", "message": "the watchdog is stopping"}}),
        ),
        (
            "/api/v1/targets/edge/pause?for=30m",
            StatusCode::OK,
            json!({"ok": true, "detail": "paused for Some(1800s)", "tookMs": 0}),
        ),
        (
            "/api/v1/targets/edge/pause",
            StatusCode::OK,
            json!({"ok": true, "detail": "paused for None", "tookMs": 0}),
        ),
        (
            "/api/v1/targets/edge/pause?for=soon",
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "bad-request", "message": "pause for \"soon\": expected number at 0 (a duration like \"30m\" or \"2h\")"}}),
        ),
        (
            "/api/v1/targets/edge/resume",
            StatusCode::CONFLICT,
            json!({"error": {"code": "not-applicable", "message": "target \"edge\" is not paused"}}),
        ),
        (
            "/api/v1/reload",
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"applied": false, "problems": ["edge.toml:3:8: error: bad"]}),
        ),
    ];
    for (path, want, body) in cases {
        let (code, _, text) = call(&app, "POST", path, Some(TOKEN)).await;
        assert_eq!(code, want, "POST {path}: {text}");
        assert_eq!(json(&text), body, "POST {path}");
    }
    let (code, _, _) = call(&app, "GET", "/api/v1/targets/edge/restart", None).await;
    assert_eq!(
        code,
        StatusCode::METHOD_NOT_ALLOWED,
        "changing calls are POST only"
    );
}

#[tokio::test]
async fn changing_calls_need_the_token_on_every_address() {
    let app = app(snapshot());
    let path = "/api/v1/targets/edge/restart";
    for call_path in [path, "/api/v1/reload", "/api/v1/targets/edge/steps/1"] {
        let (code, _, body) = call(&app, "POST", call_path, None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "POST {call_path}: {body}");
        assert_eq!(json(&body)["error"]["code"], "unauthorized");
    }
    assert_eq!(
        call(&app, "POST", path, Some("wrong!")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "POST", path, Some("s3cre")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "POST", path, Some(TOKEN)).await.0,
        StatusCode::OK
    );
    // A form a page could send (text/plain, no preflight) carries no token,
    // and its origin is another site.
    let plain = [("host", "127.0.0.1:9184"), ("content-type", "text/plain")];
    let (code, _, _) = call_with(&app, "POST", path, None, &plain).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let from_page = [plain[0], plain[1], ("origin", "http://127.0.0.1:8080")];
    let (code, _, _) = call_with(&app, "POST", path, None, &from_page).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // Reading stays open without protect-reads.
    assert_eq!(call(&app, "GET", "/health", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_changing_call_from_another_site_or_for_another_name_is_refused_even_with_the_token() {
    let app = app_with(snapshot(), |a| a.allowed_hosts = vec!["rvm-017.vpn".into()]);
    let path = "/api/v1/targets/edge/restart";
    let refused: [&[(&str, &str)]; 6] = [
        // DNS rebinding: a name that resolves here, not ours.
        &[("host", "evil.example:9184")],
        // CSRF: a page elsewhere, or the kiosk's own local app.
        &[
            ("host", "127.0.0.1:9184"),
            ("origin", "http://evil.example"),
        ],
        &[
            ("host", "127.0.0.1:9184"),
            ("origin", "http://localhost:8080"),
        ],
        &[("host", "127.0.0.1:9184"), ("origin", "null")],
        &[("host", "127.0.0.1:9184"), ("sec-fetch-site", "cross-site")],
        &[],
    ];
    for headers in refused {
        let (code, _, body) = call_with(&app, "POST", path, Some(TOKEN), headers).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert_eq!(json(&body)["error"]["code"], "forbidden");
    }
    let allowed: [&[(&str, &str)]; 4] = [
        &[("host", "127.0.0.1:9184")],
        &[("host", "rvm-017.vpn:9184")],
        &[
            ("host", "localhost:9184"),
            ("origin", "http://localhost:9184"),
        ],
        &[("host", "[::1]:9184"), ("sec-fetch-site", "same-origin")],
    ];
    for headers in allowed {
        let (code, _, body) = call_with(&app, "POST", path, Some(TOKEN), headers).await;
        assert_eq!(code, StatusCode::OK, "{headers:?}: {body}");
    }
}

#[tokio::test]
async fn protect_reads_guards_every_read_but_livez_and_health_when_public() {
    let app = app_with(snapshot(), |a| a.protect_reads = true);
    for path in ["/health", "/metrics", "/api/v1/targets"] {
        assert_eq!(
            call(&app, "GET", path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "GET {path}"
        );
        assert_eq!(
            call(&app, "GET", path, Some(TOKEN)).await.0,
            StatusCode::OK,
            "GET {path}"
        );
    }
    assert_eq!(call(&app, "GET", "/livez", None).await.0, StatusCode::OK);
    let public = app_with(snapshot(), |a| {
        a.protect_reads = true;
        a.public_health = true;
    });
    assert_eq!(
        call(&public, "GET", "/health", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&public, "GET", "/metrics", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_file_that_cannot_be_used_closes_what_it_guards() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let path = "/api/v1/targets/edge/restart";
    let app = app_with(snapshot(), |a| a.token_file = file.clone());
    let (code, _, body) = call(&app, "POST", path, Some(TOKEN)).await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "a world-writable token: {body}"
    );
    std::fs::remove_file(&file).unwrap();
    let (code, _, body) = call(&app, "POST", path, Some(TOKEN)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "a missing token: {body}");
}

fn ladder(health: crate::recovery::Health) -> crate::recovery::LadderState {
    crate::recovery::LadderState {
        health,
        failing_since: Some(1_764_600_060_000),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_failing_target_degrades_health_and_one_that_gave_up_fails_it() {
    use crate::recovery::Health;
    use crate::recovery::ladder::GaveUp;
    let failing = Health::Failing {
        reason: "unit myrvm-edge.service failed (exit-code)".into(),
        systemd_restarting: false,
    };
    let status_of = |s: Snapshot| {
        let report = HealthReport::new(&s, &Default::default(), Instant::now(), SystemTime::now());
        let check = serde_json::to_value(&report.checks["target:edge"][0]).unwrap();
        (report.status, check)
    };

    let mut s = snapshot();
    s.ladders.insert("edge".into(), ladder(Health::Healthy));
    let (status, check) = status_of(s);
    assert_eq!(status, Status::Pass);
    assert_eq!(check["state"], "healthy");

    let mut s = snapshot();
    s.ladders.insert("edge".into(), ladder(failing.clone()));
    s.last_actions.insert(
        "edge".into(),
        crate::status::LastAction {
            action: "restart",
            by: "ladder",
            result: "ok",
            detail: "restarted myrvm-edge.service in 18 ms".into(),
            at: "2026-12-01T14:41:05Z".into(),
        },
    );
    let (status, check) = status_of(s.clone());
    assert_eq!(
        status,
        Status::Warn,
        "a warning target degrades the machine"
    );
    assert_eq!(
        check,
        json!({
            "componentType": "component",
            "status": "warn",
            "state": "failing",
            "since": "2025-12-01T14:41:00Z",
            "time": check["time"],
            "output": "failing: unit myrvm-edge.service failed (exit-code)",
            "lastAction": {
                "action": "restart", "by": "ladder", "result": "ok",
                "detail": "restarted myrvm-edge.service in 18 ms",
                "at": "2026-12-01T14:41:05Z",
            },
        })
    );
    s.config.targets[0].severity = "critical";
    assert_eq!(status_of(s).0, Status::Fail, "a critical one fails it");

    let mut s = snapshot();
    let gave_up = GaveUp {
        at: 1_764_600_120_000,
        reason: "every step of the ladder was tried".into(),
    };
    s.ladders.insert(
        "edge".into(),
        crate::recovery::LadderState {
            gave_up: Some(gave_up.clone()),
            ..ladder(failing)
        },
    );
    let (status, check) = status_of(s);
    assert_eq!(status, Status::Fail);
    assert_eq!(check["state"], "gave-up");
    assert_eq!(check["since"], "2025-12-01T14:42:00Z");

    // Healed on its own after giving up: healthy, but nothing would act
    // on its next failure.
    let mut s = snapshot();
    s.ladders.insert(
        "edge".into(),
        crate::recovery::LadderState {
            gave_up: Some(gave_up),
            ..ladder(Health::Healthy)
        },
    );
    let (status, check) = status_of(s);
    assert_eq!(status, Status::Warn);
    assert_eq!(check["state"], "healthy");

    // Not observed yet: nothing to say against it.
    assert_eq!(status_of(snapshot()).0, Status::Pass);
}

/// A snapshot with something of every kind, at fixed times.
fn full_snapshot() -> Snapshot {
    use crate::recovery::Health;
    use crate::recovery::ladder::{InFlight, Incident};
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let mut s = snapshot();
    s.config.loaded_at = at(1_764_600_000);
    s.supervisor = Some(crate::supervisor::BusStatus {
        bus: "system bus".into(),
        connected: true,
        since: at(1_764_600_001),
        reconnects: 1,
        last_error: Some("connection reset by peer".into()),
    });
    s.units.insert(
        "myrvm-edge.service".into(),
        crate::supervisor::UnitState {
            load_state: "loaded".into(),
            active_state: "failed".into(),
            sub_state: "failed".into(),
            result: "exit-code".into(),
            n_restarts: 3,
            exec_main_code: 1,
            exec_main_status: 2,
            ..crate::supervisor::UnitState::unknown("myrvm-edge.service")
        },
    );
    s.accounting.insert(
        "myrvm-edge.service".into(),
        crate::supervisor::UnitAccounting {
            memory_bytes: Some(52_428_800),
            cpu_nanos: Some(1_500_000_000),
            tasks: Some(7),
            n_restarts: 3,
        },
    );
    s.ladders.insert(
        "edge".into(),
        crate::recovery::LadderState {
            health: Health::Failing {
                reason: "unit myrvm-edge.service failed (exit-code)".into(),
                systemd_restarting: false,
            },
            step: 0,
            attempts: 2,
            last_attempt_at: Some(1_764_600_090_250),
            next_attempt_at: Some(1_764_600_094_250),
            in_flight: Some(InFlight {
                step: 0,
                attempt: 2,
                since: 1_764_600_090_250,
            }),
            failing_since: Some(1_764_600_060_000),
            held_by: Some("usb-bus".into()),
            incident: Some(Incident {
                id: "edge-1764600060000".into(),
                opened_at: 1_764_600_060_000,
            }),
            ..Default::default()
        },
    );
    s.last_actions.insert(
        "edge".into(),
        crate::status::LastAction {
            action: "restart",
            by: "ladder",
            result: "ok",
            detail: "restarted myrvm-edge.service in 18 ms".into(),
            at: "2025-12-01T14:41:30Z".into(),
        },
    );
    let mut outcome =
        crate::probe::Outcome::new(crate::probe::Status::Warn, "71.5 °C").value(71.5, "°C");
    outcome.took_ms = 3;
    s.probes.insert(
        "edge:gpu".into(),
        crate::status::ProbeView {
            health: crate::probe::ProbeHealth::Passing,
            outcome,
            at: at(1_764_600_095),
        },
    );
    s.safe_mode = Some(crate::status::SafeMode {
        since: 1_764_600_050_000,
        reason: "reboot budget 1/6h spent".into(),
    });
    s.reboots = vec![at(1_764_590_000)];
    s.previous_boot = Some(crate::store::PreviousBoot {
        boot_id: "b1".into(),
        started_at: at(1_764_500_000),
        ended: crate::store::BootEnd::WatchdogReboot {
            target: Some("edge".into()),
            reason: "edge: every restart failed".into(),
            at: at(1_764_590_000),
        },
    });
    s
}

#[test]
fn health_is_camel_case_with_rfc3339_times_as_the_golden_file_shows() {
    let s = full_snapshot();
    let now = s.last_tick + Duration::from_millis(250);
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_600_100);
    let body = serde_json::to_value(HealthReport::new(&s, &open_alerts(), now, wall)).unwrap();
    let golden_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/health/golden.json"
    );
    if std::env::var_os("RVM_WATCHDOG_UPDATE_GOLDEN").is_some() {
        std::fs::write(
            golden_path,
            serde_json::to_string_pretty(&body).unwrap() + "\n",
        )
        .unwrap();
    }
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_path).unwrap()).unwrap();
    assert_eq!(
        body,
        golden,
        "/health differs from {golden_path} (RVM_WATCHDOG_UPDATE_GOLDEN=1 rewrites it):\n{}",
        serde_json::to_string_pretty(&body).unwrap()
    );

    // And by rule, wherever a field is: keys are camelCase, times RFC 3339.
    fn walk(v: &Value, path: &str, problems: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let here = format!("{path}.{k}");
                    // The checks map is keyed by `component:measurement`.
                    if path != ".checks"
                        && !(k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                            && k.chars().all(|c| c.is_ascii_alphanumeric()))
                    {
                        problems.push(format!("{here}: not camelCase"));
                    }
                    let timeish = k == "time"
                        || k == "at"
                        || k == "since"
                        || k.ends_with("At")
                        || k.ends_with("Since")
                        || k.ends_with("Until");
                    if timeish && !v.is_null() {
                        let ok = v
                            .as_str()
                            .is_some_and(|t| humantime::parse_rfc3339(t).is_ok());
                        if !ok {
                            problems.push(format!("{here}: {v} is not an RFC 3339 time"));
                        }
                    }
                    walk(v, &here, problems);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), problems);
                }
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    walk(&body, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn a_pushed_body_is_stored_whole_or_refused_naming_the_line() {
    let app = app(snapshot());
    let post = |body: &'static str, content_type: &'static str, token: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut request = Request::builder()
                .method("POST")
                .uri("/api/v1/ingest")
                .header("host", "127.0.0.1:9184")
                .header("content-type", content_type);
            if let Some(t) = token {
                request = request.header("authorization", format!("Bearer {t}"));
            }
            let response = app
                .oneshot(request.body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let code = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (code, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let text = "# TYPE rvm_deposits_total counter\nrvm_deposits_total{material=\"PET\"} 3\n";
    let (code, _) = post(text, "text/plain", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "pushing needs the token");
    let (code, body) = post(text, "text/plain; version=0.0.4", Some(TOKEN)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(json(&body), json!({"received": 1, "stored": 1}));
    let (code, body) = post(
        r#"{"samples": [{"name": "rvm_confidence", "value": 0.9}]}"#,
        "application/json",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");

    let (code, body) = post("good 1\nbad line here\n", "text/plain", Some(TOKEN)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let answer = json(&body);
    assert_eq!(
        answer["error"]["problems"][0],
        "line 2: value \"line\" of bad is not a number"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("nothing was stored: line 2")
    );
    let (code, _) = post("a=1", "application/x-www-form-urlencoded", Some(TOKEN)).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // What was stored is listed; the bad body left nothing.
    let (code, _, body) = call(&app, "GET", "/api/v1/series", None).await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<String> = json(&body)["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["series"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [r#"rvm_deposits_total{material="PET"}"#, "rvm_confidence"]
    );

    // The recorder's latest values are on /metrics.
    let (_, _, metrics) = call(&app, "GET", "/metrics", None).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"rvm_host_memory_bytes{kind="available"} 1024.0"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_query_names_what_is_wrong_with_it() {
    let app = app(snapshot());
    for (path, want) in [
        ("/api/v1/query", "`series` is required"),
        ("/api/v1/query?series=x%7Ba%3D1%7D", "needs quotes"),
        ("/api/v1/query?series=x&since=soon", "`since` = \"soon\""),
        (
            "/api/v1/query?series=x&from=yesterday",
            "`from` = \"yesterday\"",
        ),
        (
            "/api/v1/query?series=x&from=2000&to=1000",
            "`from` must be before `to`",
        ),
    ] {
        let (code, _, body) = call(&app, "GET", path, None).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            json(&body)["error"]["message"]
                .as_str()
                .unwrap()
                .contains(want),
            "{path}: {body}"
        );
    }
}

/// A call with a JSON body.
async fn send_json(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:9184")
        .header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let code = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn silences_and_maintenance_are_made_listed_and_ended_with_the_token_only() {
    let app = app(snapshot());
    let silence = json!({"target": "camera", "for": "2h", "reason": "lens cleaning", "by": "budi"});
    let (code, _) = send_json(&app, "POST", "/api/v1/silences", None, silence.clone()).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, body) = send_json(&app, "POST", "/api/v1/silences", Some(TOKEN), silence).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["silence"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["silence"]["matcher"]["target"], "camera");
    let (code, _, text) = call(&app, "GET", "/api/v1/silences", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(json(&text)["silences"][0]["id"], id.as_str());
    // Bad ones name what is wrong.
    for (bad, says) in [
        (json!({"target": "camera"}), "needs `for`"),
        (json!({"for": "soon"}), "`for` \"soon\""),
        (
            json!({"for": "1h", "severity": "urgent"}),
            "severity \"urgent\"",
        ),
        (json!({"for": "1h", "until": 5}), "not both"),
    ] {
        let (code, body) = send_json(&app, "POST", "/api/v1/silences", Some(TOKEN), bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let (code, _, _) = call(&app, "DELETE", &format!("/api/v1/silences/{id}"), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _, text) = call(
        &app,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{text}");

    let weekly = json!({"every": "sun 02:00-03:00", "reason": "weekly reboot"});
    let (code, body) = send_json(&app, "POST", "/api/v1/maintenance", Some(TOKEN), weekly).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = send_json(
        &app,
        "POST",
        "/api/v1/maintenance",
        Some(TOKEN),
        json!({"every": "funday 02:00-03:00"}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"funday\" is not a day"),
        "{body}"
    );
    let (code, _, text) = call(&app, "GET", "/api/v1/maintenance", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        json(&text)["maintenance"][0]["window"]["schedule"]["every"],
        "sun 02:00-03:00"
    );
}

#[tokio::test]
async fn alert_routes_answer_not_found_for_unknown_alerts_and_say_there_is_no_store() {
    let app = app(snapshot());
    let (code, _, text) = call(&app, "GET", "/api/v1/alerts", None).await;
    assert_eq!(code, StatusCode::OK, "{text}");
    assert_eq!(json(&text)["alerts"], json!([]));
    let (code, _, text) = call(&app, "GET", "/api/v1/alerts?state=bogus", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    let (code, _, text) = call(&app, "GET", "/api/v1/alerts/0123456789abcdef", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{text}");
    let (code, body) = send_json(
        &app,
        "POST",
        "/api/v1/alerts/0123456789abcdef/ack",
        Some(TOKEN),
        json!({"comment": "on it"}),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    let (code, _, _) = call(&app, "POST", "/api/v1/alerts/0123456789abcdef/ack", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // This engine runs without a state store: the outbox and the records say so.
    let (code, _, text) = call(&app, "GET", "/api/v1/incidents", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("state store"), "{text}");
}

#[tokio::test]
async fn events_are_listed_newest_first_filtered_and_paged() {
    use crate::store::{NewEvent, Store, StoreThread};
    let store = Store::open_in_memory().unwrap();
    let t0 = SystemTime::now() - Duration::from_secs(7200);
    for i in 0..5u64 {
        let mut e = NewEvent::new(
            t0 + Duration::from_secs(i * 1200),
            if i % 2 == 0 {
                "unit-failed"
            } else {
                "decision"
            },
            format!("event {i}"),
        );
        e.target = Some(if i == 4 { "other" } else { "edge" }.into());
        e.result = (i == 1).then(|| "done".into());
        store.append_event(&e).unwrap();
    }
    let thread = StoreThread::spawn(store);
    let app = app_on(snapshot(), |_| {}, Some(thread));
    let list = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let (code, _, text) = call(&app, "GET", "/api/v1/events", None).await;
    assert_eq!(code, StatusCode::OK, "{text}");
    let all = json(&text);
    assert_eq!(
        list(&all),
        ["event 4", "event 3", "event 2", "event 1", "event 0"]
    );
    assert_eq!(all["next"], Value::Null);
    let one = &all["events"][3];
    assert_eq!(one["kind"], "decision");
    assert_eq!(one["target"], "edge");
    assert_eq!(one["result"], "done");
    assert!(one["at"].as_str().unwrap().ends_with('Z'), "{one}");
    assert!(one["atMs"].is_u64(), "{one}");

    // By target and kind, and by time: 70 minutes back holds the last two
    // (40 and 60 minutes ago).
    let (_, _, text) = call(
        &app,
        "GET",
        "/api/v1/events?target=edge&kind=unit-failed",
        None,
    )
    .await;
    assert_eq!(list(&json(&text)), ["event 2", "event 0"]);
    let (_, _, text) = call(&app, "GET", "/api/v1/events?since=70m", None).await;
    assert_eq!(list(&json(&text)), ["event 4", "event 3"]);

    // Paged: two a page, `next` leads to the rest, none lost or repeated.
    let mut seen = Vec::new();
    let mut path = "/api/v1/events?limit=2".to_owned();
    loop {
        let (code, _, text) = call(&app, "GET", &path, None).await;
        assert_eq!(code, StatusCode::OK, "{text}");
        let page = json(&text);
        seen.extend(list(&page));
        match page["next"].as_i64() {
            Some(id) => path = format!("/api/v1/events?limit=2&before={id}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["event 4", "event 3", "event 2", "event 1", "event 0"]
    );

    // Wrong asks get the one error shape.
    for (path, code, words) in [
        (
            "/api/v1/events?target=nope",
            StatusCode::NOT_FOUND,
            "no target named \"nope\"",
        ),
        (
            "/api/v1/events?target=..%2F..%2Fetc",
            StatusCode::NOT_FOUND,
            "no target",
        ),
        (
            "/api/v1/events?limit=0",
            StatusCode::BAD_REQUEST,
            "`limit` = 0",
        ),
        (
            "/api/v1/events?limit=5000",
            StatusCode::BAD_REQUEST,
            "expected 1 to 1000",
        ),
        (
            "/api/v1/events?since=yesterday",
            StatusCode::BAD_REQUEST,
            "`since`",
        ),
    ] {
        let (got, _, text) = call(&app, "GET", path, None).await;
        assert_eq!(got, code, "{path}: {text}");
        assert!(
            json(&text)["error"]["message"]
                .as_str()
                .unwrap()
                .contains(words),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn events_without_a_store_say_so() {
    let app = app(snapshot());
    let (code, _, text) = call(&app, "GET", "/api/v1/events", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(json(&text)["error"]["code"], "no-store");
}

/// `path` with its `{…}` segments filled in: a configured target, a step.
fn filled(path: &str) -> String {
    path.replace("{name}", "edge")
        .replace("{step}", "1")
        .replace("{fingerprint}", "0123456789abcdef")
        .replace("{id}", "1")
        .replace("{file}", "app.js")
}

#[test]
fn every_route_is_in_openapi_json_and_every_operation_there_is_routed() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            let changes = method != "get";
            // Diagnostics bundles hold journal text: read with the token only.
            let always = path.starts_with("/api/v1/diagnostics");
            let secured = op["security"] == json!([{ "bearer": [] }]);
            assert_eq!(
                changes || always,
                secured,
                "{method} {path}: a changing call or a diagnostics read, and only those, lists the token as required"
            );
            if secured {
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} lists no 401"
                );
            }
        }
    }
    let routed: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "routed but not in openapi.json: {missing:?}; in openapi.json but not routed: {stale:?}"
    );
}

#[tokio::test]
async fn every_route_of_the_list_is_routed_by_the_router() {
    // A route in ROUTES the router does not take would answer the one
    // "no route" error; every one of them takes its method.
    let app = app(snapshot());
    for (method, path) in ROUTES {
        if *path == "/api/v1/stream" {
            continue; // Answers a stream; its own test below.
        }
        let (code, _, body) = call(&app, &method.to_uppercase(), &filled(path), Some(TOKEN)).await;
        if code == StatusCode::NOT_FOUND || code == StatusCode::METHOD_NOT_ALLOWED {
            let v = json(&body);
            assert_ne!(
                v["error"]["code"], "method-not-allowed",
                "{method} {path}: {body}"
            );
            assert!(
                !v["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("openapi.json"),
                "{method} {path} is not routed: {body}"
            );
        }
    }
}

#[tokio::test]
async fn every_changing_route_answers_401_without_the_token_and_with_a_wrong_one() {
    let app = app(snapshot());
    let changing: Vec<_> = ROUTES.iter().filter(|(m, _)| *m != "get").collect();
    assert!(changing.len() >= 13, "{changing:?}");
    for (method, path) in changing {
        let method = method.to_uppercase();
        let path = filled(path);
        for token in [None, Some("wrong!"), Some("s3cre"), Some("s3cret2")] {
            let (code, _, body) = call(&app, &method, &path, token).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{method} {path} {token:?}");
            assert_eq!(json(&body)["error"]["code"], "unauthorized", "{body}");
        }
    }
}

#[tokio::test]
async fn errors_have_one_shape_for_unknown_targets_routes_methods_and_bad_input() {
    let app = app(snapshot());
    let long = "x".repeat(4096);
    for name in [
        "nope",
        "..%2F..%2Fetc%2Fpasswd",
        "%00",
        "edge%00",
        long.as_str(),
    ] {
        for (method, path) in [
            ("GET", format!("/api/v1/targets/{name}")),
            ("POST", format!("/api/v1/targets/{name}/restart")),
            ("GET", format!("/api/v1/events?target={name}")),
        ] {
            let (code, kind, body) = call(&app, method, &path, Some(TOKEN)).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert_eq!(kind, "application/json", "{method} {path}");
            let v = json(&body);
            assert_eq!(v["error"]["code"], "not-found", "{body}");
            assert!(v["error"]["message"].is_string(), "{body}");
        }
    }
    // A path with `../` in it takes no route at all.
    let (code, _, body) = call(&app, "GET", "/api/v1/targets/../../etc", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(json(&body)["error"]["code"], "not-found");
    let (code, _, body) = call(&app, "GET", "/api/v2/nothing", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"]["code"], "not-found");
    let (code, _, body) = call(&app, "DELETE", "/api/v1/reload", Some(TOKEN)).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json(&body)["error"]["code"], "method-not-allowed");
    // A step that is not a number, a limit that is not one.
    let (code, _, body) = call(&app, "POST", "/api/v1/targets/edge/steps/two", Some(TOKEN)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(json(&body)["error"]["code"], "bad-request");
    let (code, _, body) = call(&app, "GET", "/api/v1/incidents?limit=many", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(json(&body)["error"]["code"], "bad-request");
    // A body that is not JSON.
    let response = app
        .clone()
        .oneshot(
            Request::post("/api/v1/silences")
                .header("host", "127.0.0.1:9184")
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(
        json(std::str::from_utf8(&body).unwrap())["error"]["code"],
        "bad-request"
    );
}

#[tokio::test]
async fn a_body_over_a_mib_gets_413_before_a_byte_of_it_is_read() {
    let app = app(snapshot());
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = polled.clone();
    // Ten MiB announced; reading the body would record it.
    let body = Body::from_stream(futures_util::stream::once(async move {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 10 << 20]))
    }));
    for (path, token) in [("/api/v1/ingest", Some(TOKEN)), ("/api/v1/silences", None)] {
        let mut request = Request::post(path)
            .header("host", "127.0.0.1:9184")
            .header("content-type", "text/plain")
            .header("content-length", (10 << 20).to_string());
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let text = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let v = json(std::str::from_utf8(&text).unwrap());
        assert_eq!(v["error"]["code"], "too-large", "{v}");
    }
    let response = app
        .clone()
        .oneshot(
            Request::post("/api/v1/ingest")
                .header("host", "127.0.0.1:9184")
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "text/plain")
                .header("content-length", (10 << 20).to_string())
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        !polled.load(std::sync::atomic::Ordering::SeqCst),
        "the body was read"
    );
    // Sent without a length (chunked), it is cut off at the limit.
    let response = app
        .clone()
        .oneshot(
            Request::post("/api/v1/ingest")
                .header("host", "127.0.0.1:9184")
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "text/plain")
                .body(Body::from_stream(futures_util::stream::iter((0..20).map(
                    |_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'#'; 1 << 19])),
                ))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn readyz_wants_the_loop_going_round_and_systemd_connected() {
    let (code, kind, body) = call(&app(full_snapshot()), "GET", "/readyz", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(kind, HEALTH_JSON);
    assert_eq!(json(&body)["status"], "pass");
    let mut s = full_snapshot();
    s.supervisor.as_mut().unwrap().connected = false;
    let (code, _, body) = call(&app(s), "GET", "/readyz", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let v = json(&body);
    assert_eq!(v["status"], "fail");
    assert!(
        v["output"]
            .as_str()
            .unwrap()
            .contains("not connected to systemd"),
        "{v}"
    );
    let mut s = full_snapshot();
    s.last_tick = Instant::now() - Duration::from_secs(30);
    let (code, _, body) = call(&app(s), "GET", "/readyz", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("core loop"), "{body}");
}

#[tokio::test]
async fn one_target_in_detail_has_its_probes_ladder_unit_last_action_and_incidents() {
    let (code, _, body) = call(&app(full_snapshot()), "GET", "/api/v1/targets/edge", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v = json(&body);
    assert_eq!(v["name"], "edge");
    assert_eq!(v["status"], "warn", "{v}");
    assert_eq!(v["state"], "failing");
    assert_eq!(v["since"], "2025-12-01T14:41:00Z");
    assert_eq!(v["unitState"]["activeState"], "failed");
    assert_eq!(v["recovery"]["attempts"], 2);
    assert_eq!(v["recovery"]["heldBy"], "usb-bus");
    assert_eq!(v["lastAction"]["action"], "restart");
    assert_eq!(
        v["probes"],
        json!([{
            "name": "gpu", "health": "passing", "status": "warn",
            "observedValue": 71.5, "observedUnit": "°C", "output": "71.5 °C",
            "tookMs": 3, "at": "2025-12-01T14:41:35Z",
        }])
    );
    // The alert engine here has no store: it says so, the rest answers.
    assert!(
        v["incidents"].is_object() || v["incidents"].is_array(),
        "{v}"
    );
}

/// Reads SSE messages from `body` until `want` have come (each as its
/// `event`, `id` and `data`), within a deadline.
async fn messages(
    body: &mut axum::body::BodyDataStream,
    buffer: &mut String,
    want: usize,
) -> Vec<(String, Option<String>, Value)> {
    use futures_util::StreamExt as _;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), None, String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.into();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.into());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !event.is_empty() {
                got.push((event, id, json(&data)));
            }
            if got.len() == want {
                return got;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {want} messages came: {got:?}", got.len()))
            .expect("the stream ended")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

async fn connect(app: &Router, last: Option<&str>) -> axum::body::BodyDataStream {
    let mut request = Request::get("/api/v1/stream").header("host", "127.0.0.1:9184");
    if let Some(id) = last {
        request = request.header("last-event-id", id);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    response.into_body().into_data_stream()
}

#[tokio::test]
async fn the_stream_starts_with_current_state_follows_live_and_resumes_from_last_event_id() {
    use crate::event::{Event, Events};
    use crate::recovery::Health;
    let events: Shared = std::sync::Arc::new(std::sync::Mutex::new(Events::new(None)));
    let emit_refused = |generation: u64| {
        events.lock().unwrap().emit(Event::ReloadRefused {
            generation,
            problems: vec![format!("bad {generation}")],
        })
    };
    events.lock().unwrap().emit(Event::HealthChanged {
        target: "edge".into(),
        unit: Some("myrvm-edge.service".into()),
        from: Health::Unknown,
        to: Health::Healthy,
    });
    emit_refused(2);
    let s = snapshot();
    let run = s
        .started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let app = app_full(
        watch::Sender::new(s).subscribe(),
        |_| {},
        None,
        Some(events.clone()),
    );

    // A new client: the stream's note, the state that holds (the target's
    // health; not the refused reload, which is over), then live events.
    let mut body = connect(&app, None).await;
    let mut buf = String::new();
    let got = messages(&mut body, &mut buf, 2).await;
    assert_eq!(got[0].0, "stream");
    assert_eq!(got[0].2["resumed"], false);
    assert_eq!(got[0].2["current"], 1);
    assert_eq!(got[1].0, "health-changed");
    assert_eq!(got[1].1.as_deref(), Some(format!("{run}-1").as_str()));
    assert_eq!(got[1].2["target"], "edge");
    assert_eq!(got[1].2["seq"], 1);
    emit_refused(3);
    let got = messages(&mut body, &mut buf, 1).await;
    assert_eq!(got[0].0, "reload-refused");
    assert_eq!(got[0].1.as_deref(), Some(format!("{run}-3").as_str()));
    assert_eq!(got[0].2["fields"]["generation"], 3, "{:?}", got[0]);
    drop(body);

    // Gone for a while: it comes back with Last-Event-ID and gets what it
    // missed, in order, then what follows.
    emit_refused(4);
    emit_refused(5);
    let mut body = connect(&app, Some(&format!("{run}-3"))).await;
    let mut buf = String::new();
    emit_refused(6);
    let got = messages(&mut body, &mut buf, 4).await;
    assert_eq!(got[0].0, "stream");
    assert_eq!(got[0].2["resumed"], true);
    assert_eq!(got[0].2["missed"], 2);
    let ids: Vec<_> = got[1..].iter().map(|m| m.1.clone().unwrap()).collect();
    assert_eq!(ids, [4, 5, 6].map(|n| format!("{run}-{n}")));
    drop(body);

    // An id of another run, or one no longer kept: current state instead.
    for _ in 0..crate::event::RECENT {
        emit_refused(7);
    }
    for last in ["1-3".to_owned(), format!("{run}-4"), "garbage".into()] {
        let mut body = connect(&app, Some(&last)).await;
        let got = messages(&mut body, &mut String::new(), 2).await;
        assert_eq!(got[0].2["resumed"], false, "{last}");
        assert_eq!(got[1].0, "health-changed", "{last}");
    }
}

#[tokio::test]
async fn metrics_are_gzipped_when_asked_and_plain_otherwise() {
    let app = app(full_snapshot());
    let plain = call(&app, "GET", "/metrics", None).await.2;
    assert!(plain.contains("rvm_watchdog"), "{plain}");
    for (accept, gzipped) in [
        ("gzip", true),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", true),
        ("gzip;q=0", false),
        ("identity", false),
    ] {
        let response = app
            .clone()
            .oneshot(
                Request::get("/metrics")
                    .header("accept-encoding", accept)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let encoding = response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(response.headers()["vary"], "accept-encoding");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let text = if gzipped {
            assert_eq!(encoding.as_deref(), Some("gzip"), "{accept}");
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
                .unwrap();
            assert!(bytes.len() < text.len(), "compressed is smaller");
            text
        } else {
            assert_eq!(encoding, None, "{accept}");
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        assert_eq!(text, plain, "{accept}");
    }
}

#[tokio::test]
async fn health_is_rendered_anew_as_soon_as_the_snapshot_changes() {
    let tx = watch::Sender::new(snapshot());
    let app = app_full(tx.subscribe(), |_| {}, None, None);
    let (code, _, first) = call(&app, "GET", "/health", None).await;
    assert_eq!(code, StatusCode::OK);
    // Nothing changed: the same document (rendered once).
    assert_eq!(call(&app, "GET", "/health", None).await.2, first);
    // The target fails: the very next request says so.
    tx.send_modify(|s| {
        s.ladders.insert(
            "edge".into(),
            ladder(crate::recovery::Health::Failing {
                reason: "unit failed".into(),
                systemd_restarting: false,
            }),
        );
        s.config.targets[0].severity = "critical";
    });
    let (code, _, body) = call(&app, "GET", "/health", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(json(&body)["checks"]["target:edge"][0]["state"], "failing");
    // And past the reuse time, the core loop's age moves on.
    tokio::time::sleep(HEALTH_REUSE + Duration::from_millis(20)).await;
    let (_, _, later) = call(&app, "GET", "/health", None).await;
    assert_ne!(
        json(&later)["checks"]["core-loop:age"][0]["observedValue"],
        json(&body)["checks"]["core-loop:age"][0]["observedValue"]
    );
}

#[tokio::test]
async fn the_dashboard_is_served_whole_from_the_binary_and_calls_nothing_else() {
    // With protect-reads the page and its assets still load (they hold no
    // data); what they read needs the token.
    let app = app_with(snapshot(), |a| a.protect_reads = true);
    let (code, kind, page) = call(&app, "GET", "/", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(kind, "text/html; charset=utf-8");
    assert_eq!(
        call(&app, "GET", "/health", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Every file the page names is served, with its type.
    let named: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(named.len() >= 4, "{named:?}");
    for path in &named {
        let (code, kind, _) = call(&app, "GET", path, None).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert!(kind.starts_with("text/"), "{path}: {kind}");
    }
    let (code, _, body) = call(&app, "GET", "/assets/../../etc/passwd", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    // Nothing outside the daemon: no absolute URL in our own files (the
    // vendored library names its home only in a comment), and a policy
    // that forbids any.
    for (name, bytes) in dashboard::assets() {
        if name.starts_with("uplot") {
            continue;
        }
        let text = std::str::from_utf8(bytes).unwrap();
        for scheme in ["http:", "https:", "//cdn", "ws:", "wss:"] {
            assert!(!text.contains(scheme), "{name} names {scheme}");
        }
    }
    let uplot = dashboard::assets()
        .find(|(n, _)| *n == "uplot.js")
        .unwrap()
        .1;
    let uplot = std::str::from_utf8(uplot).unwrap();
    assert!(!uplot.contains("fetch(") && !uplot.contains("XMLHttpRequest"));
    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
}

#[test]
fn the_dashboards_first_load_is_under_150_kb_gzipped() {
    let bytes = dashboard::first_load_gzipped();
    assert!(bytes < 150 * 1024, "{bytes} bytes");
    // And it is the real thing: the chart library alone is over 20 KB.
    assert!(bytes > 20 * 1024, "{bytes} bytes");
}

#[tokio::test]
async fn the_dashboard_starts_from_the_sites_view_and_is_gone_when_turned_off() {
    let src = SourceFile::new(
        "watchdog.toml",
        "[dashboard]\ntiles = [\"gpu\", \"cpu\"]\ncharts = [\"kpis\", \"cpu\"]\ntargets = [\"edge\"]\n\n\
         [[metrics.kpi]]\nname = \"rvm_kpi_deposits_per_hour\"\nhelp = \"deposits accepted per hour\"\nkind = \"rate\"\nof = \"rvm_deposits_total\"\nper = \"1h\"\n"
            .to_owned(),
    );
    let mut out = Vec::new();
    let raw = src.deserialize(&mut out, |_| None).unwrap();
    let config = validate::config(&src, raw, &mut out);
    assert!(out.is_empty(), "{out:?}");
    let mut s = snapshot();
    s.config = ConfigView::new(&config, 1, 0, "watchdog.toml".into());
    let (code, _, body) = call(&app(s.clone()), "GET", "/api/v1/dashboard", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!({
            "enabled": true,
            "tiles": ["gpu", "cpu"],
            "charts": ["kpis", "cpu"],
            "targets": ["edge"],
            "kpis": [{"name": "rvm_kpi_deposits_per_hour", "help": "deposits accepted per hour"}],
        })
    );
    // The default: every tile and chart, every target.
    let (_, _, body) = call(&app(snapshot()), "GET", "/api/v1/dashboard", None).await;
    let v = json(&body);
    assert_eq!(
        v["tiles"].as_array().unwrap().len(),
        crate::config::model::DASHBOARD_TILES.len()
    );
    assert_eq!(v["targets"], serde_json::Value::Null);

    // `[api] dashboard = false`: the page and its assets answer 404, saying why.
    s.config.dashboard.enabled = false;
    let app = app(s);
    for path in ["/", "/assets/app.js"] {
        let (code, _, body) = call(&app, "GET", path, None).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
        assert!(
            json(&body)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`[api] dashboard = false`"),
            "{body}"
        );
    }
    assert_eq!(call(&app, "GET", "/health", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn diagnostics_bundles_are_listed_and_served_with_the_token_only() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join(super::diagnostics::DIR);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("20261204T101500Z-camera.tar.gz"), b"gz-bundle").unwrap();
    std::fs::write(state.path().join("api.token"), "secret\n").unwrap();
    let mut s = snapshot();
    s.state_dir = state.path().display().to_string();
    let app = app(s);

    // Open reads (no protect-reads) do not open these.
    for path in [
        "/api/v1/diagnostics",
        "/api/v1/diagnostics/20261204T101500Z-camera.tar.gz",
    ] {
        let (code, _, body) = call(&app, "GET", path, None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let (code, _, body) = call(&app, "GET", "/api/v1/diagnostics", Some(TOKEN)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let listed = json(&body);
    assert_eq!(
        listed["bundles"][0]["name"],
        "20261204T101500Z-camera.tar.gz"
    );
    assert_eq!(listed["bundles"][0]["bytes"], 9);
    assert_eq!(listed["bundles"].as_array().unwrap().len(), 1);

    let (code, kind, body) = call(
        &app,
        "GET",
        "/api/v1/diagnostics/20261204T101500Z-camera.tar.gz",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(kind, "application/gzip");
    assert!(body.ends_with("bundle"), "{body:?}");
    // Nothing else in the state directory is reachable.
    for path in [
        "/api/v1/diagnostics/..%2Fapi.token",
        "/api/v1/diagnostics/api.token",
        "/api/v1/diagnostics/absent.tar.gz",
    ] {
        let (code, _, body) = call(&app, "GET", path, Some(TOKEN)).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(!body.contains("secret"), "{body}");
    }
}

#[tokio::test]
async fn a_disabled_target_is_listed_in_health_with_what_to_fix() {
    let mut s = snapshot();
    s.config.disabled = vec![crate::status::DisabledView {
        name: "platform".into(),
        file: "/etc/rvm-watchdog/policies/platform.toml".into(),
        to_enable: vec!["a myrvm probe needs [platform] base-url in watchdog.toml".into()],
    }];
    let app = app(s);
    let (code, _, body) = call(&app, "GET", "/health", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let doc = json(&body);
    assert_eq!(doc["disabledTargets"][0]["name"], "platform");
    assert_eq!(
        doc["disabledTargets"][0]["toEnable"][0],
        "a myrvm probe needs [platform] base-url in watchdog.toml"
    );
    // Not among the supervised targets.
    assert!(
        doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "platform")
    );
}
