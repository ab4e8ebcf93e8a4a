//! A real browser driven over WebDriver: Debian's `chromedriver` starting
//! Debian's `chromium` headless, with a fresh profile and no network but
//! loopback (the flags ../shared/TESTING.md names). The driver is started
//! here and killed by pid when dropped; it ends the browser with it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// `chromedriver` and `chromium`, or `None` when either is not installed
/// here (tests/run installs both).
pub fn installed() -> Option<(PathBuf, PathBuf)> {
    let driver = PathBuf::from("/usr/bin/chromedriver");
    let browser = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())?;
    driver.exists().then_some((driver, browser))
}

/// One browser session.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A session in a window `width` × `height`, its console kept.
    pub fn start(width: u32, height: u32) -> Option<Browser> {
        let (driver_bin, browser_bin) = installed()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let profile = tempfile::tempdir().unwrap();
        let mut me = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while call(addr, "GET", "/status", None)
            .map(|v| v["value"]["ready"] != true)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": browser_bin,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", me._profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let v = call(addr, "POST", "/session", Some(&caps)).expect("new session");
        me.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Some(me)
    }

    /// A WebDriver command of this session; panics on an error answer.
    pub fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("{method} /session/{}{path}: {e}", self.session))
    }

    /// A WebDriver command of this session: its value, or the error answer.
    fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let path = format!("/session/{}{path}", self.session);
        let v = call(self.addr, method, &path, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if v["value"]["error"].is_string() {
            return Err(v["value"].clone());
        }
        Ok(v["value"].clone())
    }

    /// Finds `css` and runs `what` on it; when the page redrew the element
    /// between the two (a refresh replaces rows and inputs), finds it again,
    /// as a user would see the new one, a few times.
    fn on_element(&self, css: &str, what: &str, body: Value) {
        for _ in 0..5 {
            let id = self.element(css);
            match self.try_command("POST", &format!("/element/{id}/{what}"), Some(body.clone())) {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("{what} {css}: {e}"),
            }
        }
        panic!("{what} {css}: the element was redrawn five times in a row");
    }

    /// Opens `url` and waits for its load.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page; its `return` value.
    pub fn run(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits until `script` returns something other than null or false,
    /// checking every 50 ms; returns it.
    pub fn wait(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.run(script);
            if !v.is_null() && v != false {
                return v;
            }
            if start.elapsed() > timeout {
                let dom = self.run("return document.body.innerText");
                panic!(
                    "no {what} within {timeout:?}; the page says:\n{}",
                    dom.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Clicks the element `css` selects, as a user would.
    pub fn click(&self, css: &str) {
        self.on_element(css, "click", json!({}));
    }

    /// Types `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", json!({ "text": text }));
    }

    /// A PNG of the viewport, written to `path`; its width and height.
    pub fn screenshot(&self, path: &Path) -> (u32, u32) {
        let v = self.command("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, &png).unwrap();
        let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    /// What the page logged to its console since the last call.
    pub fn console(&self) -> Vec<Value> {
        self.command("POST", "/se/log", Some(json!({ "type": "browser" })))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A Chrome DevTools Protocol command (CPU throttling and the like).
    pub fn devtools(&self, cmd: &str, params: Value) -> Value {
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = call(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP/1.1 exchange with the driver, on a connection of its own: its
/// JSON answer.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(90)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // The driver keeps the connection open: read the head, then as many
    // bytes as it announces.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the driver closed the connection".into());
        }
        answer.extend_from_slice(&chunk[..n]);
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..at]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("no content-length")?;
            break (at + 4, length);
        }
    };
    while answer.len() < head_end + length {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&answer[head_end..]);
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}
