//! Redirects, followed by hand: the shared client follows none, so a probe
//! that sends a credential never sends it where it was not configured.
//!
//! A probe follows a redirect only when its policy says
//! `follow-redirects = "same-origin"`, and then only to the same scheme,
//! host and port, at most [`MAX_HOPS`] times. Every URL actually requested
//! passes the probe's guard first. A redirect not followed is reported with
//! its target.

use reqwest::{Client, RequestBuilder, Response, Url};

use crate::config::Redirects;

/// At most this many redirects are followed.
pub const MAX_HOPS: usize = 5;

/// The answer that ended the walk, and the URLs it went through.
pub struct Answer {
    /// The last response: not a redirect, or one that was not followed.
    pub response: Response,
    /// The URL that gave `response`.
    pub url: Url,
    /// Why a redirect was not followed, naming its target; `None` when the
    /// answer is not a redirect.
    pub unfollowed: Option<String>,
}

/// Why no answer came back.
pub enum Failure {
    /// The URL cannot be parsed.
    BadUrl(String),
    /// The guard refused a URL (the first or a redirect's target).
    Refused(String),
    /// The request failed.
    Request(reqwest::Error),
}

/// Sends a request built by `build` for `url`, following redirects as
/// `policy` allows. `guard` sees every URL before it is requested.
pub async fn send(
    client: &Client,
    url: &str,
    policy: Redirects,
    build: impl Fn(&Client, Url) -> RequestBuilder,
    guard: impl Fn(&Url) -> Result<(), String>,
) -> Result<Answer, Failure> {
    let mut url = Url::parse(url).map_err(|e| Failure::BadUrl(format!("{url}: {e}")))?;
    let mut hops = 0;
    loop {
        guard(&url).map_err(Failure::Refused)?;
        let response = build(client, url.clone())
            .send()
            .await
            .map_err(Failure::Request)?;
        if !response.status().is_redirection() {
            return Ok(Answer {
                response,
                url,
                unfollowed: None,
            });
        }
        let code = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(location) = location else {
            return Ok(Answer {
                response,
                url,
                unfollowed: Some(format!("{code} without a Location")),
            });
        };
        let target = url.join(&location).ok();
        let shown = target
            .as_ref()
            .map_or(location.clone(), |t| t.as_str().to_owned());
        let why = match (&target, policy) {
            (None, _) => Some(format!("{code} to an invalid Location \"{location}\"")),
            (Some(_), Redirects::None) => Some(format!(
                "{code} redirect to {shown} not followed (follow-redirects = \"none\")"
            )),
            (Some(t), Redirects::SameOrigin) if t.origin() != url.origin() => Some(format!(
                "{code} redirect to {shown} not followed: another origin"
            )),
            (Some(_), Redirects::SameOrigin) if hops == MAX_HOPS => Some(format!(
                "{code} redirect to {shown} not followed: more than {MAX_HOPS} redirects"
            )),
            _ => None,
        };
        match (why, target) {
            (None, Some(t)) => {
                hops += 1;
                url = t;
            }
            (why, _) => {
                return Ok(Answer {
                    response,
                    url,
                    unfollowed: why,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering each path from `routes` (path →
    /// raw reply head), recording the request heads it saw.
    async fn server(
        routes: Vec<(&'static str, String)>,
    ) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut n = 0;
                    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf[n..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => n += k,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    log.lock().unwrap().push(head);
                    let reply = routes
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| "HTTP/1.1 404 Not Found\r\ncontent-length: 0".into());
                    let _ = sock
                        .write_all(format!("{reply}\r\nconnection: close\r\n\r\n").as_bytes())
                        .await;
                });
            }
        });
        (addr, seen)
    }

    fn to(location: &str) -> String {
        format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0")
    }

    fn ok() -> String {
        "HTTP/1.1 200 OK\r\ncontent-length: 0".into()
    }

    fn with_key(c: &Client, u: Url) -> RequestBuilder {
        c.get(u).header("X-Key", "s3cret")
    }

    fn client() -> Client {
        Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_never_followed_and_the_key_stays_home() {
        let (other, other_seen) = server(vec![("/elsewhere", ok())]).await;
        let (home, _) = server(vec![("/start", to(&format!("http://{other}/elsewhere")))]).await;
        for policy in [Redirects::None, Redirects::SameOrigin] {
            let Ok(answer) = send(
                &client(),
                &format!("http://{home}/start"),
                policy,
                with_key,
                |_| Ok(()),
            )
            .await
            else {
                panic!("no answer");
            };
            assert_eq!(answer.response.status().as_u16(), 302);
            let why = answer.unfollowed.unwrap();
            assert!(why.contains(&format!("http://{other}/elsewhere")), "{why}");
        }
        assert!(
            other_seen.lock().unwrap().is_empty(),
            "the other origin was asked"
        );
    }

    #[tokio::test]
    async fn same_origin_redirects_are_followed_when_asked_and_every_url_is_guarded() {
        let (home, seen) = server(vec![
            ("/a", to("/b")),
            ("/b", ok()),
            ("/c", to("/api/heartbeat")),
            ("/loop", to("/loop")),
        ])
        .await;
        let base = format!("http://{home}");
        let guard = |u: &Url| {
            if u.path().contains("heartbeat") {
                Err(format!("refusing {u}"))
            } else {
                Ok(())
            }
        };
        let Ok(a) = send(
            &client(),
            &format!("{base}/a"),
            Redirects::SameOrigin,
            with_key,
            guard,
        )
        .await
        else {
            panic!("no answer");
        };
        assert_eq!(a.response.status().as_u16(), 200);
        assert_eq!(a.url.path(), "/b");
        assert!(a.unfollowed.is_none());

        let Ok(not) = send(
            &client(),
            &format!("{base}/a"),
            Redirects::None,
            with_key,
            guard,
        )
        .await
        else {
            panic!("no answer");
        };
        assert!(not.unfollowed.unwrap().contains(&format!("{base}/b")));

        match send(
            &client(),
            &format!("{base}/c"),
            Redirects::SameOrigin,
            with_key,
            guard,
        )
        .await
        {
            Err(Failure::Refused(why)) => assert!(why.contains("/api/heartbeat"), "{why}"),
            _ => panic!("the guarded target was not refused"),
        }
        let heads = seen.lock().unwrap().clone();
        assert!(!heads.iter().any(|h| h.contains("heartbeat")), "{heads:?}");

        let Ok(looped) = send(
            &client(),
            &format!("{base}/loop"),
            Redirects::SameOrigin,
            with_key,
            guard,
        )
        .await
        else {
            panic!("no answer");
        };
        assert!(
            looped
                .unfollowed
                .unwrap()
                .contains(&format!("more than {MAX_HOPS}"))
        );
    }
}
