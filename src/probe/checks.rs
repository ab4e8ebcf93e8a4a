//! The checks themselves, one function per kind. Each returns an
//! [`Outcome`]; the scheduler bounds it with the probe's timeout. Reads of
//! `/proc` and `/sys` go through `[daemon] host-root`, so tests run against
//! fixture trees.

use std::path::Path;
use std::time::SystemTime;

use super::{Context, Outcome, Status};
use crate::config::{Check, Thresholds};

/// Runs one check.
pub async fn run(check: &Check, ctx: &Context, timeout: std::time::Duration) -> Outcome {
    match check {
        Check::Http {
            url,
            method,
            expect_status,
            body_contains,
            json,
            redirects,
        } => {
            let want = Expect {
                status: expect_status,
                body_contains: body_contains.as_deref(),
                json: json.as_ref(),
            };
            http(&ctx.http, url, method, *redirects, &want).await
        }
        Check::Tcp { address } => tcp(address).await,
        Check::Exec { command } => exec(command).await,
        Check::FileAge { file, max_age } => file_age(file, *max_age),
        Check::Disk { mount, thresholds } => disk(mount, thresholds),
        Check::Memory { thresholds } => memory(&ctx.host_root, thresholds),
        Check::Temperature { zone, thresholds } => {
            temperature(&ctx.host_root, zone.as_deref(), thresholds)
        }
        Check::Unit { unit } => Outcome::new(
            Status::Warn,
            format!(
                "{unit}: unit probes follow systemd's signals in the running daemon; see /health"
            ),
        ),
        Check::Network {
            interface,
            default_route,
            resolve,
            address,
            url,
        } => {
            let steps = super::network::Steps {
                interface: interface.as_deref(),
                default_route: *default_route,
                resolve: resolve.as_deref(),
                address: address.as_deref(),
                url: url.as_deref(),
            };
            // A step's own deadline comes just before the probe's timeout,
            // so that the step that hung is the one named.
            let deadline = tokio::time::Instant::now() + timeout.mul_f64(0.95);
            super::network::run(&ctx.host_root, &steps, &ctx.http, deadline).await
        }
        Check::Myrvm { path, redirects } => {
            super::myrvm::run(
                ctx.platform.as_ref(),
                path,
                *redirects,
                &ctx.http,
                timeout.mul_f64(0.95),
            )
            .await
        }
        // These keep state between runs: see `probe::Runner`.
        Check::Camera { .. } | Check::Gpu { .. } | Check::Process { .. } => Outcome::new(
            Status::Warn,
            format!("{} probes are run by their own runner", check.kind()),
        ),
    }
}

/// Pass, warn or fail by thresholds on a value.
pub(crate) fn judge(value: f64, t: &Thresholds) -> Status {
    if t.fail_above.is_some_and(|f| value > f) {
        Status::Fail
    } else if t.warn_above.is_some_and(|w| value > w) {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// What an `http` probe requires of the answer.
struct Expect<'a> {
    /// Accepted codes; empty = 200–399.
    status: &'a [u16],
    /// Body substring.
    body_contains: Option<&'a str>,
    /// JSON pointer and expected value.
    json: Option<&'a (String, String)>,
}

/// An HTTP(S) request: the status must be accepted (200–399 unless
/// `expect-status` says otherwise), the body must hold `body-contains`, and
/// the JSON value at `json-pointer` must equal `json-equals`. Redirects are
/// followed only as `follow-redirects` allows; the answer names the URL
/// that gave it and any redirect not followed.
async fn http(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    redirects: crate::config::Redirects,
    want: &Expect<'_>,
) -> Outcome {
    use super::redirect::{self, Failure};
    let started = std::time::Instant::now();
    let head = method == "HEAD";
    let build = |c: &reqwest::Client, u: reqwest::Url| if head { c.head(u) } else { c.get(u) };
    let answer = match redirect::send(client, url, redirects, build, |_| Ok(())).await {
        Ok(a) => a,
        Err(Failure::Request(e)) => {
            let why = if e.is_connect() {
                "cannot connect"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            };
            return Outcome::new(Status::Fail, format!("{why}: {url}: {e}"));
        }
        Err(Failure::BadUrl(why) | Failure::Refused(why)) => {
            return Outcome::new(Status::Fail, why);
        }
    };
    let code = answer.response.status().as_u16();
    // Where the answer came from, and what was not followed.
    let mut from = if answer.url.as_str() == url {
        url.to_owned()
    } else {
        format!("{url} (redirected to {})", answer.url)
    };
    if let Some(why) = &answer.unfollowed {
        from.push_str(&format!(" ({why})"));
    }
    let accepted = if want.status.is_empty() {
        (200..400).contains(&code)
    } else {
        want.status.contains(&code)
    };
    let body = if want.body_contains.is_some() || want.json.is_some() {
        answer.response.text().await.unwrap_or_default()
    } else {
        String::new()
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let fail = |why: String| Outcome::new(Status::Fail, why).value(ms, "ms");
    if !accepted {
        return fail(format!("{from} answered {code}"));
    }
    if let Some(text) = want.body_contains
        && !body.contains(text)
    {
        return fail(format!(
            "{from} answered {code} without \"{text}\" in its body"
        ));
    }
    if let Some((pointer, expected)) = want.json {
        let value: serde_json::Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => return fail(format!("{from} did not answer JSON: {e}")),
        };
        let got = match value.pointer(pointer) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return fail(format!("{from}: nothing at {pointer}")),
        };
        if &got != expected {
            return fail(format!(
                "{from}: {pointer} is \"{got}\", not \"{expected}\""
            ));
        }
    }
    Outcome::new(
        Status::Pass,
        format!("{from} answered {code} in {ms:.1} ms"),
    )
    .value(ms, "ms")
}

async fn tcp(address: &str) -> Outcome {
    let started = std::time::Instant::now();
    match tokio::net::TcpStream::connect(address).await {
        Ok(_) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            Outcome::new(
                Status::Pass,
                format!("connected to {address} in {ms:.1} ms"),
            )
            .value(ms, "ms")
        }
        Err(e) => Outcome::new(Status::Fail, format!("cannot connect to {address}: {e}")),
    }
}

/// Nagios plugin convention: exit 0 ok, 1 warning, 2 critical, 3 unknown;
/// the first line of output is the message.
async fn exec(command: &[String]) -> Outcome {
    let output = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match output {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or("").trim().to_owned();
            let (status, label) = match out.status.code() {
                Some(0) => (Status::Pass, "ok"),
                Some(1) => (Status::Warn, "warning"),
                Some(2) => (Status::Fail, "critical"),
                Some(3) => (Status::Warn, "unknown"),
                Some(_) => (Status::Fail, "unexpected exit code"),
                None => (Status::Fail, "killed by a signal"),
            };
            let message = if first.is_empty() {
                label.to_owned()
            } else {
                first
            };
            Outcome::new(status, message)
                .value(f64::from(out.status.code().unwrap_or(-1)), "exit code")
        }
        Err(e) => Outcome::new(Status::Fail, format!("cannot run {}: {e}", command[0])),
    }
}

fn file_age(file: &Path, max_age: std::time::Duration) -> Outcome {
    let modified = match std::fs::metadata(file).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(e) => {
            return Outcome::new(Status::Fail, format!("cannot read {}: {e}", file.display()));
        }
    };
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    let secs = age.as_secs_f64();
    let status = if age > max_age {
        Status::Fail
    } else {
        Status::Pass
    };
    Outcome::new(
        status,
        format!(
            "{} was written {secs:.1} s ago (limit {})",
            file.display(),
            humantime::format_duration(max_age)
        ),
    )
    .value(secs, "s")
}

fn disk(mount: &Path, t: &Thresholds) -> Outcome {
    match nix::sys::statvfs::statvfs(mount) {
        Ok(st) => {
            let size = st.blocks() as f64 * st.fragment_size() as f64;
            let free = st.blocks_available() as f64 * st.fragment_size() as f64;
            if size <= 0.0 {
                return Outcome::new(Status::Warn, format!("{} reports no size", mount.display()));
            }
            let used = 100.0 * (1.0 - free / size);
            Outcome::new(
                judge(used, t),
                format!("{} is {used:.1} % full", mount.display()),
            )
            .value(used, "percent")
        }
        Err(e) => Outcome::new(
            Status::Fail,
            format!("cannot read {}: {e}", mount.display()),
        ),
    }
}

fn memory(root: &Path, t: &Thresholds) -> Outcome {
    let path = root.join("proc/meminfo");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return Outcome::new(Status::Fail, format!("cannot read {}: {e}", path.display()));
        }
    };
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(available)) if total > 0.0 => {
            let used = 100.0 * (1.0 - available / total);
            Outcome::new(judge(used, t), format!("memory {used:.1} % used")).value(used, "percent")
        }
        _ => Outcome::new(
            Status::Fail,
            format!("{} lacks MemTotal or MemAvailable", path.display()),
        ),
    }
}

/// The named thermal zone, or the hottest readable one. Zones that cannot
/// be read (offline `cv*` zones on Orin Nano answer EAGAIN) and readings of
/// -256 °C (no sensor) are missing, not readings.
///
/// A machine without any thermal zone (a VM, a container) passes, saying
/// so: there is nothing to overheat that the kernel can tell of. A named
/// zone that is missing, or zones that all fail to read, warn.
fn temperature(root: &Path, zone: Option<&str>, t: &Thresholds) -> Outcome {
    let dir = root.join("sys/class/thermal");
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(&dir)
        .map(|e| e.filter_map(Result::ok).collect())
        .unwrap_or_default();
    let zones: Vec<&std::fs::DirEntry> = entries
        .iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .collect();
    if zones.is_empty() && zone.is_none() {
        return Outcome::new(
            Status::Pass,
            format!(
                "this machine has no thermal zones ({} is empty)",
                dir.display()
            ),
        );
    }
    let mut readings: Vec<(String, f64)> = Vec::new();
    for entry in zones {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = std::fs::read_to_string(entry.path().join("type"))
            .map(|s| s.trim().to_owned())
            .unwrap_or(name);
        if zone.is_some_and(|z| z != kind) {
            continue;
        }
        let Ok(raw) = std::fs::read_to_string(entry.path().join("temp")) else {
            continue;
        };
        let Ok(milli) = raw.trim().parse::<i64>() else {
            continue;
        };
        if milli <= -256_000 {
            continue;
        }
        readings.push((kind, milli as f64 / 1000.0));
    }
    match readings.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        Some((kind, celsius)) => {
            Outcome::new(judge(celsius, t), format!("{kind} at {celsius:.1} °C"))
                .value(celsius, "°C")
        }
        None => Outcome::new(
            Status::Warn,
            match zone {
                Some(z) => format!("thermal zone {z} cannot be read (under {})", dir.display()),
                None => format!("no thermal zone under {} can be read", dir.display()),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Redirects;

    fn thresholds(warn: f64, fail: f64) -> Thresholds {
        Thresholds {
            warn_above: Some(warn),
            fail_above: Some(fail),
        }
    }

    fn zone(root: &Path, n: u32, kind: &str, temp: Option<&str>) {
        let dir = root.join(format!("sys/class/thermal/thermal_zone{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("type"), format!("{kind}\n")).unwrap();
        if let Some(t) = temp {
            std::fs::write(dir.join("temp"), format!("{t}\n")).unwrap();
        }
    }

    #[test]
    fn the_hottest_readable_zone_counts_and_missing_sensors_do_not() {
        let root = tempfile::tempdir().unwrap();
        zone(root.path(), 0, "cpu-thermal", Some("44125"));
        zone(root.path(), 1, "cv0-thermal", None); // offline: no readable temp
        zone(root.path(), 2, "gpu-thermal", Some("-256000")); // no sensor
        zone(root.path(), 3, "tj-thermal", Some("91500"));
        let o = temperature(root.path(), None, &thresholds(85.0, 95.0));
        assert_eq!(o.status, Status::Warn);
        assert_eq!(o.observed_value, Some(91.5));
        assert_eq!(o.output, "tj-thermal at 91.5 °C");
        let cpu = temperature(root.path(), Some("cpu-thermal"), &thresholds(85.0, 95.0));
        assert_eq!(
            (cpu.status, cpu.observed_value),
            (Status::Pass, Some(44.125))
        );
        let gpu = temperature(root.path(), Some("gpu-thermal"), &thresholds(85.0, 95.0));
        assert_eq!(gpu.status, Status::Warn);
        assert_eq!(
            gpu.output,
            format!(
                "thermal zone gpu-thermal cannot be read (under {}/sys/class/thermal)",
                root.path().display()
            )
        );
    }

    #[test]
    fn a_machine_without_thermal_zones_passes_but_unreadable_ones_warn() {
        let t = thresholds(85.0, 95.0);
        let root = tempfile::tempdir().unwrap();
        let dir = format!("{}/sys/class/thermal", root.path().display());
        let o = temperature(root.path(), None, &t);
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert_eq!(
            o.output,
            format!("this machine has no thermal zones ({dir} is empty)")
        );
        assert_eq!(o.observed_value, None);
        // A zone named in the policy is expected to be there.
        let o = temperature(root.path(), Some("tj-thermal"), &t);
        assert_eq!(o.status, Status::Warn);
        // Zones that exist but cannot be read are a problem.
        zone(root.path(), 0, "cv0-thermal", None);
        zone(root.path(), 1, "soc0-thermal", Some("-256000"));
        let o = temperature(root.path(), None, &t);
        assert_eq!(o.status, Status::Warn);
        assert_eq!(o.output, format!("no thermal zone under {dir} can be read"));
    }

    #[test]
    fn memory_uses_available_memory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc")).unwrap();
        std::fs::write(
            root.path().join("proc/meminfo"),
            "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:     400000 kB\n",
        )
        .unwrap();
        let o = memory(root.path(), &thresholds(90.0, 97.0));
        assert_eq!(o.status, Status::Warn);
        assert_eq!(o.output, "memory 95.0 % used");
    }

    #[test]
    fn file_age_fails_past_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("heartbeat");
        std::fs::write(&file, "1").unwrap();
        assert_eq!(
            file_age(&file, std::time::Duration::from_secs(60)).status,
            Status::Pass
        );
        let old = SystemTime::now() - std::time::Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let o = file_age(&file, std::time::Duration::from_secs(60));
        assert_eq!(o.status, Status::Fail);
        assert!(o.output.contains("limit 1m"), "{}", o.output);
        assert_eq!(
            file_age(
                &dir.path().join("absent"),
                std::time::Duration::from_secs(1)
            )
            .status,
            Status::Fail
        );
    }

    #[tokio::test]
    async fn exec_follows_the_nagios_convention() {
        let cmd = |script: &str| vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
        assert_eq!(
            exec(&cmd("echo all good; exit 0")).await.status,
            Status::Pass
        );
        let warn = exec(&cmd("echo load high; echo more; exit 1")).await;
        assert_eq!(
            (warn.status, warn.output.as_str()),
            (Status::Warn, "load high")
        );
        assert_eq!(exec(&cmd("exit 2")).await.status, Status::Fail);
        assert_eq!(exec(&cmd("exit 2")).await.output, "critical");
        assert_eq!(exec(&cmd("exit 3")).await.status, Status::Warn);
        assert_eq!(
            exec(&["/nonexistent/check".to_owned()]).await.status,
            Status::Fail
        );
    }

    #[tokio::test]
    async fn tcp_connects_or_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let o = tcp(&addr).await;
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.observed_unit, Some("ms"));
        drop(listener);
        // Port 1 on loopback: nothing listens there.
        let o = tcp("127.0.0.1:1").await;
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.output.starts_with("cannot connect to 127.0.0.1:1"),
            "{}",
            o.output
        );
    }

    /// A one-route HTTP server on loopback answering `status` with `body`.
    async fn serve(status: u16, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move {
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn http_checks_status_body_and_json() {
        let ctx = Context::new("/".into());
        let ok = serve(200, r#"{"status":"healthy","n":3}"#).await;
        let pointer = ("/status".to_owned(), "healthy".to_owned());
        let o = http(
            &ctx.http,
            &ok,
            "GET",
            Redirects::None,
            &Expect {
                status: &[],
                body_contains: Some("healthy"),
                json: Some(&pointer),
            },
        )
        .await;
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert_eq!(o.observed_unit, Some("ms"));
        let number = ("/n".to_owned(), "3".to_owned());
        assert_eq!(
            http(
                &ctx.http,
                &ok,
                "GET",
                Redirects::None,
                &Expect {
                    status: &[],
                    body_contains: None,
                    json: Some(&number)
                }
            )
            .await
            .status,
            Status::Pass
        );
        let wrong = ("/status".to_owned(), "sick".to_owned());
        let o = http(
            &ctx.http,
            &ok,
            "GET",
            Redirects::None,
            &Expect {
                status: &[],
                body_contains: None,
                json: Some(&wrong),
            },
        )
        .await;
        assert_eq!(
            o.output,
            format!("{ok}: /status is \"healthy\", not \"sick\"")
        );
        let o = http(
            &ctx.http,
            &ok,
            "GET",
            Redirects::None,
            &Expect {
                status: &[],
                body_contains: Some("nope"),
                json: None,
            },
        )
        .await;
        assert_eq!(o.status, Status::Fail);
        let down = serve(503, "busy").await;
        let o = http(
            &ctx.http,
            &down,
            "GET",
            Redirects::None,
            &Expect {
                status: &[],
                body_contains: None,
                json: None,
            },
        )
        .await;
        assert_eq!(
            (o.status, o.output),
            (Status::Fail, format!("{down} answered 503"))
        );
        assert_eq!(
            http(
                &ctx.http,
                &down,
                "GET",
                Redirects::None,
                &Expect {
                    status: &[503],
                    body_contains: None,
                    json: None
                }
            )
            .await
            .status,
            Status::Pass
        );
        let o = http(
            &ctx.http,
            "http://127.0.0.1:1/",
            "GET",
            Redirects::None,
            &Expect {
                status: &[],
                body_contains: None,
                json: None,
            },
        )
        .await;
        assert!(o.output.starts_with("cannot connect"), "{}", o.output);
    }

    #[test]
    fn disk_reports_percent_used() {
        let o = disk(Path::new("/"), &thresholds(99.99, 100.0));
        assert!(
            o.observed_value.is_some_and(|v| (0.0..=100.0).contains(&v)),
            "{o:?}"
        );
    }
}
