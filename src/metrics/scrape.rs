//! Scraping the Prometheus endpoints the RVM services expose: one GET, the
//! body read up to a size limit and parsed whole ([`super::text`]), every
//! sample labelled with the scrape's name (`source`). Each scrape also
//! yields `rvm_scrape_up` and `rvm_scrape_duration_seconds` for its source,
//! so a service that stops answering is itself a series.

use std::time::{Duration, Instant};

use super::{Kind, Sample, SeriesKey};

/// A body larger than this is refused.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What one scrape found: the samples (with `up` and the duration), and
/// why it failed when it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Scraped {
    /// The service's samples when it answered well, then `rvm_scrape_up`
    /// and `rvm_scrape_duration_seconds`.
    pub samples: Vec<Sample>,
    /// Why the scrape failed, in one line; `None` when it worked.
    pub error: Option<String>,
}

/// Scrapes `url` once for the source `name`, within `timeout`. Redirects
/// are not followed (the shared client follows none).
pub async fn scrape(
    client: &reqwest::Client,
    name: &str,
    url: &str,
    timeout: Duration,
    now_ms: u64,
) -> Scraped {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, fetch(client, url, now_ms)).await;
    let result = match result {
        Ok(r) => r,
        Err(_) => Err(format!("{url}: no answer within {timeout:?}")),
    };
    let took = started.elapsed().as_secs_f64();
    let (mut samples, error) = match result {
        Ok(samples) => (samples, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    for s in &mut samples {
        let mut labels = s.key.labels.clone();
        labels.retain(|(k, _)| k != "source");
        labels.push(("source".into(), name.into()));
        s.key = SeriesKey::new(
            &s.key.name,
            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
    }
    let own = |metric: &str, value: f64| Sample {
        key: SeriesKey::new(metric, [("source", name)]),
        kind: Kind::Gauge,
        at_ms: now_ms,
        value,
    };
    samples.push(own(
        "rvm_scrape_up",
        if error.is_none() { 1.0 } else { 0.0 },
    ));
    samples.push(own("rvm_scrape_duration_seconds", took));
    Scraped { samples, error }
}

async fn fetch(client: &reqwest::Client, url: &str, now_ms: u64) -> Result<Vec<Sample>, String> {
    let mut response = client
        .get(url)
        .header("Accept", "text/plain; version=0.0.4")
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::probe::myrvm::describe(&e)))?;
    let code = response.status();
    if !code.is_success() {
        return Err(format!("{url} answered {}", code.as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{url}: the body broke off: {e}"))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!(
                "{url}: the body is larger than {} MiB",
                MAX_BODY / 1024 / 1024
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| format!("{url}: the body is not UTF-8"))?;
    super::text::parse(&text, now_ms).map_err(|errors| {
        let first: Vec<String> = errors.iter().take(3).map(ToString::to_string).collect();
        format!("{url}: {} bad line(s): {}", errors.len(), first.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering every request with `body` (status
    /// `code`), or never answering when `code` is 0.
    async fn serving(code: u16, body: String) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    if code == 0 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let head = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                });
            }
        });
        addr
    }

    fn value(s: &Scraped, key: &str) -> Option<f64> {
        s.samples
            .iter()
            .find(|x| x.key.to_string() == key)
            .map(|x| x.value)
    }

    #[tokio::test]
    async fn a_service_is_scraped_and_labelled_with_its_source() {
        let addr = serving(
            200,
            "# TYPE deposits_total counter\ndeposits_total{material=\"PET\",source=\"spoofed\"} 7\n"
                .into(),
        )
        .await;
        let client = crate::probe::Context::new("/".into()).http;
        let s = scrape(
            &client,
            "vision",
            &format!("http://{addr}/metrics"),
            Duration::from_secs(5),
            1000,
        )
        .await;
        assert_eq!(s.error, None);
        assert_eq!(
            value(&s, r#"deposits_total{material="PET",source="vision"}"#),
            Some(7.0)
        );
        assert_eq!(s.samples[0].kind, Kind::Counter);
        assert_eq!(value(&s, r#"rvm_scrape_up{source="vision"}"#), Some(1.0));
        assert!(value(&s, r#"rvm_scrape_duration_seconds{source="vision"}"#).is_some());
    }

    #[tokio::test]
    async fn a_failed_scrape_keeps_nothing_but_says_why_and_up_zero() {
        let client = crate::probe::Context::new("/".into()).http;
        let t = Duration::from_secs(5);
        let bad = serving(200, "ok 1\nbroken line\n".into()).await;
        let s = scrape(&client, "v", &format!("http://{bad}/"), t, 1).await;
        assert_eq!(s.samples.len(), 2, "only up and the duration");
        assert_eq!(value(&s, r#"rvm_scrape_up{source="v"}"#), Some(0.0));
        assert!(
            s.error.as_deref().unwrap().contains("line 2"),
            "{:?}",
            s.error
        );

        let down = serving(503, String::new()).await;
        let s = scrape(&client, "v", &format!("http://{down}/"), t, 1).await;
        assert!(s.error.as_deref().unwrap().contains("answered 503"));

        let huge = serving(200, "x 1\n".repeat(MAX_BODY / 4 + 10)).await;
        let s = scrape(&client, "v", &format!("http://{huge}/"), t, 1).await;
        assert!(
            s.error.as_deref().unwrap().contains("larger than 4 MiB"),
            "{:?}",
            s.error
        );

        let silent = serving(0, String::new()).await;
        let s = scrape(
            &client,
            "v",
            &format!("http://{silent}/"),
            Duration::from_millis(200),
            1,
        )
        .await;
        assert!(
            s.error.as_deref().unwrap().contains("no answer within"),
            "{:?}",
            s.error
        );
    }
}
