//! The `network` probe: the uplink checked step by step, in the order a
//! packet needs them: the interface up with carrier, a default route, the
//! platform's name resolving, a TCP connect, an HTTP round trip. The first
//! step that fails is named in the output, so a broken resolver reads
//! "DNS", not "platform down".

use std::path::Path;
use std::time::Instant;

use tokio::time::Instant as Deadline;

use super::{Outcome, Status};

/// What the probe checks (every step optional but the route, which is on
/// by default).
#[derive(Debug, Clone, Default)]
pub struct Steps<'a> {
    /// Interface that must be up with carrier.
    pub interface: Option<&'a str>,
    /// A default route must exist.
    pub default_route: bool,
    /// Name to resolve.
    pub resolve: Option<&'a str>,
    /// `host:port` to connect to.
    pub address: Option<&'a str>,
    /// URL for the HTTP round trip.
    pub url: Option<&'a str>,
}

/// The interface's state from sysfs: `Ok(())` when up with carrier.
pub fn interface(root: &Path, name: &str) -> Result<(), String> {
    let dir = root.join("sys/class/net").join(name);
    if !dir.exists() {
        return Err(format!("interface {name} does not exist"));
    }
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map(|s| s.trim().to_owned())
            .ok()
    };
    let oper = read("operstate").unwrap_or_else(|| "unknown".into());
    // `carrier` cannot be read while the interface is administratively down.
    let carrier = read("carrier");
    match (oper.as_str(), carrier.as_deref()) {
        (_, Some("1")) if oper != "down" => Ok(()),
        ("down", _) if carrier.is_none() => Err(format!("interface {name} is down")),
        (_, Some("0")) | ("down", _) => Err(format!("interface {name} has no carrier")),
        _ => Err(format!("interface {name} is {oper}")),
    }
}

/// The interfaces holding a default route, IPv4 then IPv6, from
/// `/proc/net/route` and `/proc/net/ipv6_route`.
pub fn default_routes(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(text) = std::fs::read_to_string(root.join("proc/net/route")) {
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
            let up = flags & 0x1 != 0;
            if f[1] == "00000000" && f[7] == "00000000" && up && !found.iter().any(|i| i == f[0]) {
                found.push(f[0].to_owned());
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(root.join("proc/net/ipv6_route")) {
        // dest plen src plen next-hop metric refcnt use flags iface
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let flags = u32::from_str_radix(f[8], 16).unwrap_or(0);
            let reject = flags & 0x0200 != 0;
            let default = f[0].bytes().all(|b| b == b'0') && f[1] == "00";
            if default && !reject && f[9] != "lo" && !found.iter().any(|i| i == f[9]) {
                found.push(f[9].to_owned());
            }
        }
    }
    found
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Runs the steps in order until one fails; each network step is bounded
/// by `deadline`, so a step that hangs is the one named.
pub async fn run(
    root: &Path,
    steps: &Steps<'_>,
    http: &reqwest::Client,
    deadline: Deadline,
) -> Outcome {
    let mut done: Vec<String> = Vec::new();
    let mut value: Option<f64> = None;
    let fail = |step: &str, why: String, done: &[String], value: Option<f64>| {
        let ok = if done.is_empty() {
            String::new()
        } else {
            format!(" ({})", done.join(", "))
        };
        let o = Outcome::new(Status::Fail, format!("{step}: {why}{ok}"));
        match value {
            Some(v) => o.value(v, "ms"),
            None => o,
        }
    };
    let late = |what: &str| format!("{what}: no answer in time");

    if let Some(name) = steps.interface {
        if let Err(e) = interface(root, name) {
            return fail("link", e, &done, value);
        }
        done.push(format!("{name} up"));
    }
    if steps.default_route {
        let routes = default_routes(root);
        let via = match steps.interface {
            Some(name) if routes.iter().any(|r| r == name) => Some(name.to_owned()),
            Some(_) => None,
            None => routes.first().cloned(),
        };
        match via {
            Some(i) => done.push(format!("default route via {i}")),
            None if routes.is_empty() => {
                return fail("route", "no default route".into(), &done, value);
            }
            None => {
                return fail(
                    "route",
                    format!(
                        "the default route is via {}, not {}",
                        routes.join(", "),
                        steps.interface.unwrap_or_default()
                    ),
                    &done,
                    value,
                );
            }
        }
    }
    if let Some(name) = steps.resolve {
        let clock = Instant::now();
        let lookup = tokio::net::lookup_host((name, 0));
        match tokio::time::timeout_at(deadline, lookup).await {
            Ok(Ok(mut addrs)) => match addrs.next() {
                Some(a) => {
                    let t = ms(clock);
                    value = Some(t);
                    done.push(format!("{name} is {} ({t:.0} ms)", a.ip()));
                }
                None => {
                    return fail("DNS", format!("{name} has no address"), &done, value);
                }
            },
            Ok(Err(e)) => {
                return fail("DNS", format!("cannot resolve {name}: {e}"), &done, value);
            }
            Err(_) => return fail("DNS", late(&format!("resolving {name}")), &done, value),
        }
    }
    if let Some(address) = steps.address {
        let clock = Instant::now();
        let connect = tokio::net::TcpStream::connect(address);
        match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(_)) => {
                let t = ms(clock);
                value = Some(t);
                done.push(format!("TCP {address} in {t:.0} ms"));
            }
            Ok(Err(e)) => {
                return fail(
                    "TCP",
                    format!("cannot connect to {address}: {e}"),
                    &done,
                    value,
                );
            }
            Err(_) => {
                return fail(
                    "TCP",
                    late(&format!("connecting to {address}")),
                    &done,
                    value,
                );
            }
        }
    }
    if let Some(url) = steps.url {
        let clock = Instant::now();
        match tokio::time::timeout_at(deadline, http.get(url).send()).await {
            // Any HTTP answer proves the path; what it says is for `http`
            // and `myrvm` probes to judge.
            Ok(Ok(response)) => {
                let t = ms(clock);
                value = Some(t);
                done.push(format!("HTTP {} in {t:.0} ms", response.status().as_u16()));
            }
            Ok(Err(e)) => {
                return fail(
                    "HTTP",
                    format!("{url}: {}", super::myrvm::describe(&e)),
                    &done,
                    value,
                );
            }
            Err(_) => return fail("HTTP", late(url), &done, value),
        }
    }
    if done.is_empty() {
        return Outcome::new(Status::Warn, "nothing to check");
    }
    let o = Outcome::new(Status::Pass, done.join(", "));
    match value {
        Some(v) => o.value(v, "ms"),
        None => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn iface(root: &Path, name: &str, oper: &str, carrier: Option<&str>) {
        let dir = root.join("sys/class/net").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("operstate"), format!("{oper}\n")).unwrap();
        if let Some(c) = carrier {
            std::fs::write(dir.join("carrier"), format!("{c}\n")).unwrap();
        }
    }

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
        eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";

    fn routes(root: &Path, v4: &str, v6: &str) {
        std::fs::create_dir_all(root.join("proc/net")).unwrap();
        std::fs::write(root.join("proc/net/route"), v4).unwrap();
        std::fs::write(root.join("proc/net/ipv6_route"), v6).unwrap();
    }

    /// A client as the daemon makes one: TLS with ring, installed first.
    fn client() -> reqwest::Client {
        crate::probe::install_tls();
        reqwest::Client::new()
    }

    fn deadline() -> Deadline {
        Deadline::now() + Duration::from_secs(5)
    }

    #[test]
    fn interface_states() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        iface(r, "eth0", "up", Some("1"));
        iface(r, "eth1", "down", None);
        iface(r, "eth2", "down", Some("0"));
        iface(r, "wlan0", "dormant", Some("1"));
        assert_eq!(interface(r, "eth0"), Ok(()));
        assert_eq!(interface(r, "eth1").unwrap_err(), "interface eth1 is down");
        assert_eq!(
            interface(r, "eth2").unwrap_err(),
            "interface eth2 has no carrier"
        );
        assert_eq!(interface(r, "wlan0"), Ok(()));
        assert_eq!(
            interface(r, "eth9").unwrap_err(),
            "interface eth9 does not exist"
        );
    }

    #[test]
    fn default_routes_from_proc_v4_and_v6_but_not_lo_or_reject() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 wlan0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        routes(r, ROUTES, v6);
        assert_eq!(default_routes(r), ["eth0", "wlan0"]);
        routes(r, "Iface\tDestination\n", "");
        assert!(default_routes(r).is_empty());
    }

    #[tokio::test]
    async fn the_first_failing_step_is_named_with_what_passed() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        iface(r, "eth0", "up", Some("1"));
        routes(r, ROUTES, "");
        let http = client();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().to_string();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };

        // All well.
        let steps = Steps {
            interface: Some("eth0"),
            default_route: true,
            resolve: Some("localhost"),
            address: Some(&open),
            url: None,
        };
        let o = run(r, &steps, &http, deadline()).await;
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(
            o.output
                .starts_with("eth0 up, default route via eth0, localhost is "),
            "{}",
            o.output
        );
        assert!(o.output.contains(&format!("TCP {open} in")), "{}", o.output);

        // TCP refused: named as TCP, with the steps that passed.
        let steps = Steps {
            address: Some(&closed),
            ..steps
        };
        let o = run(r, &steps, &http, deadline()).await;
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.output
                .starts_with(&format!("TCP: cannot connect to {closed}")),
            "{}",
            o.output
        );
        assert!(
            o.output
                .contains("(eth0 up, default route via eth0, localhost is"),
            "{}",
            o.output
        );

        // No default route: named as the route, before DNS is tried.
        routes(r, "Iface\tDestination\n", "");
        let o = run(r, &steps, &http, deadline()).await;
        assert_eq!(o.output, "route: no default route (eth0 up)");

        // The link down comes first.
        iface(r, "eth0", "down", None);
        std::fs::remove_file(r.join("sys/class/net/eth0/carrier")).unwrap();
        let o = run(r, &steps, &http, deadline()).await;
        assert_eq!(o.output, "link: interface eth0 is down");
    }

    #[tokio::test]
    async fn the_http_round_trip_is_the_last_step_and_any_answer_passes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let root = tempfile::tempdir().unwrap();
        let http = client();
        let url = format!("http://{addr}/");
        let steps = Steps {
            url: Some(&url),
            ..Steps::default()
        };
        let o = run(root.path(), &steps, &http, deadline()).await;
        // The path works; what the server says is for other probes to judge.
        assert_eq!(o.status, Status::Pass, "{}", o.output);
        assert!(o.output.starts_with("HTTP 503 in "), "{}", o.output);
        assert_eq!(o.observed_unit, Some("ms"));

        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", l.local_addr().unwrap())
        };
        let steps = Steps {
            url: Some(&closed),
            ..Steps::default()
        };
        let o = run(root.path(), &steps, &http, deadline()).await;
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.output
                .starts_with(&format!("HTTP: {closed}: cannot connect: ")),
            "{}",
            o.output
        );
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_dns_not_the_platform() {
        let root = tempfile::tempdir().unwrap();
        let steps = Steps {
            resolve: Some("host.invalid"),
            ..Steps::default()
        };
        let o = run(
            root.path(),
            &steps,
            &client(),
            Deadline::now() + Duration::from_secs(3),
        )
        .await;
        assert_eq!(o.status, Status::Fail);
        assert!(o.output.starts_with("DNS: "), "{}", o.output);
        assert!(o.output.contains("host.invalid"), "{}", o.output);
    }
}
