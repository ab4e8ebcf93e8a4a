//! The daemon as a child process: started with arguments, its stderr read
//! line by line, its HTTP API queried, killed by pid when dropped.
//!
//! Tests wait on the daemon's state with [`TestDaemon::wait_for`] (a
//! condition on its `/health` document, with a deadline); the line waiters
//! are for facts that only the log tells.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `rvm-watchdog run`.
pub struct TestDaemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line seen so far.
    pub seen: Vec<String>,
    /// The API address, read from the start-up line.
    pub addr: SocketAddr,
}

/// The binary under test.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvm-watchdog"))
}

impl TestDaemon {
    /// Starts `rvm-watchdog run` on files under `dir` (`dir/watchdog.toml`,
    /// `dir/policies`, state in `dir/state`), on a free loopback port, and
    /// waits for it to serve.
    pub fn start(dir: &Path) -> TestDaemon {
        Self::start_with_env(dir, &[])
    }

    /// [`TestDaemon::start`] with extra environment variables (e.g. the bus address).
    pub fn start_with_env(dir: &Path, env: &[(String, String)]) -> TestDaemon {
        let mut child = binary()
            .arg("run")
            .arg("--config")
            .arg(dir.join("watchdog.toml"))
            .arg("--policies")
            .arg(dir.join("policies"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--listen", "127.0.0.1:0", "--log-level", "debug"])
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rvm-watchdog");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = TestDaemon {
            child,
            lines: rx,
            seen: Vec::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        // The start-up line: "rvm-watchdog VERSION started", with the address.
        let line = daemon.wait_for_line(" listen=", Duration::from_secs(20));
        let listen = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .expect("the start-up line names the listen address");
        daemon.addr = listen.parse().unwrap();
        daemon.wait_for_line("ready", Duration::from_secs(20));
        daemon
    }

    /// Waits for a stderr line containing `needle` (seen before or arriving
    /// within `timeout`), and returns it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_line_after(0, needle, timeout)
    }

    /// Like [`TestDaemon::wait_for_line`], ignoring the first `skip` lines.
    pub fn wait_for_line_after(&mut self, skip: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.seen.iter().skip(skip).find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line containing {needle:?} within {timeout:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Polls `GET /health` (a 200 or a 503 both carry the document) every
    /// 20 ms until `cond` holds for it, and returns that document. Panics
    /// after `timeout`, naming `what`, the last document seen and the
    /// daemon's stderr so far.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_lines();
            let last = match try_http_get(self.addr, "/health") {
                Ok((200 | 503, _, body)) => match serde_json::from_str::<Value>(&body) {
                    Ok(health) if cond(&health) => return health,
                    Ok(health) => format!("{health:#}"),
                    Err(e) => format!("not JSON ({e}): {body}"),
                },
                Ok((code, _, body)) => format!("HTTP {code}: {body}"),
                Err(e) => format!("no answer: {e}"),
            };
            if Instant::now() >= deadline {
                self.drain_lines();
                panic!(
                    "not {what} within {timeout:?}; last /health:\n{last}\nstderr so far:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Moves the stderr lines that arrived into [`TestDaemon::seen`].
    fn drain_lines(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Sends a signal to the daemon (by its pid).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the daemon to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path` from the API: (status code, content type, body).
    pub fn get(&self, path: &str) -> (u16, String, String) {
        http_get(self.addr, path)
    }

    /// GET `path`, which must answer 200, and parse the body as JSON.
    pub fn get_ok(&self, path: &str) -> serde_json::Value {
        let (code, _, body) = self.get(path);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// GET `path` and parse the body as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, _, body) = self.get(path);
        assert!(code == 200 || code == 503, "GET {path}: {code} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The entry of `health["targets"]` named `name`, or `Null` when there is
/// none (as indexing a [`Value`] gives), so conditions can look before the
/// target is there.
pub fn target<'a>(health: &'a Value, name: &str) -> &'a Value {
    static NONE: Value = Value::Null;
    health["targets"]
        .as_array()
        .and_then(|targets| targets.iter().find(|t| t["name"] == name))
        .unwrap_or(&NONE)
}

impl TestDaemon {
    /// `rvm-watchdog ARGS` as an operator on the machine runs it, against
    /// this daemon (its files under `dir`): the exit code and the output,
    /// trimmed.
    pub fn cli(&self, dir: &Path, args: &[&str]) -> (Option<i32>, String) {
        let out = binary()
            .args(args)
            .arg("--config")
            .arg(dir.join("watchdog.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--api")
            .arg(self.addr.to_string())
            .output()
            .expect("run rvm-watchdog");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    }

    /// The token the daemon made in its state directory (no `token-file`).
    pub fn token(&self, dir: &Path) -> String {
        std::fs::read_to_string(dir.join("state/api.token"))
            .expect("the daemon's generated token")
            .trim()
            .to_owned()
    }
}

/// SIGKILL to a process the test started (or the unit it runs under systemd).
pub fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// A minimal HTTP/1.1 GET: (status code, content type, body). Panics when
/// the server does not answer.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// [`http_get`] that reports failure instead of panicking.
pub fn try_http_get(addr: SocketAddr, path: &str) -> Result<(u16, String, String), String> {
    request(addr, "GET", path, None)
}

/// A minimal HTTP/1.1 GET with a bearer token: (status code, content type, body).
pub fn try_http_get_with_token(
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> Result<(u16, String, String), String> {
    request(addr, "GET", path, Some(token))
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A POST with a body and the token: (status, body).
pub fn post(
    addr: SocketAddr,
    path: &str,
    token: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

/// A minimal HTTP/1.1 POST with an optional bearer token: (status code, content type, body).
pub fn try_http_post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String, String), String> {
    request(addr, "POST", path, token)
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("not an HTTP response")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status code")?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((code, content_type, body.to_owned()))
}
