//! The webhook channel: the notification as JSON (schema version 1,
//! `packaging/webhook-v1.schema.json`), POSTed to the channel's `url`.
//!
//! Headers: `Idempotency-Key` (the notification's key: a retried
//! notification keeps it), and, when the channel has a `secret-file`,
//! `X-RVM-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body with
//! the file's contents (trimmed) as the key. A receiver verifies it by
//! computing the same over the bytes it received.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::{Notifier, Outcome, Sending, classify};
use crate::alert::Notification;
use crate::status::IdentityView;

/// The header that carries the signature.
pub const SIGNATURE: &str = "x-rvm-signature";

/// A webhook channel.
pub struct Webhook {
    /// Where to POST.
    pub url: String,
    /// The HMAC secret's file.
    pub secret_file: Option<PathBuf>,
    /// How long an attempt may take.
    pub timeout: Duration,
    /// The shared client.
    pub http: reqwest::Client,
}

/// The body: schema version 1.
pub fn body(n: &Notification, who: &IdentityView) -> serde_json::Value {
    json!({
        "version": 1,
        "key": n.key,
        "channel": n.channel,
        "createdAt": n.created_at,
        "severity": n.severity,
        "machine": who,
        "items": n.items,
    })
}

/// `sha256=<hex>` of `body` keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Notifier for Webhook {
    fn send<'a>(&'a self, n: &'a Notification, who: &'a IdentityView) -> Sending<'a> {
        Box::pin(async move {
            let text = body(n, who).to_string();
            let mut request = self
                .http
                .post(&self.url)
                .timeout(self.timeout)
                .header("content-type", "application/json")
                .header("idempotency-key", &n.key);
            if let Some(file) = &self.secret_file {
                // Read at each attempt: a rotated secret takes effect at once.
                let secret = crate::trust::secret_file(file).and_then(|()| {
                    std::fs::read_to_string(file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))
                });
                match secret {
                    Ok(secret) => {
                        request = request
                            .header(SIGNATURE, sign(secret.trim().as_bytes(), text.as_bytes()));
                    }
                    Err(why) => {
                        return Outcome::Retry {
                            why: format!("cannot sign: {why}"),
                            after: None,
                        };
                    }
                }
            }
            match request.body(text).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let text = response.text().await.unwrap_or_default();
                    classify(status, retry_after.as_deref(), &text)
                }
                Err(e) => Outcome::Retry {
                    why: if e.is_timeout() {
                        format!(
                            "no answer within {}",
                            humantime::format_duration(self.timeout)
                        )
                    } else {
                        format!("cannot reach {}: {e}", self.url)
                    },
                    after: None,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body carries what the schema in the repository requires, no more.
    #[test]
    fn the_body_follows_the_schema_in_the_repository() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../packaging/webhook-v1.schema.json")).unwrap();
        let item = crate::alert::Item {
            fingerprint: "0123456789abcdef".into(),
            why: crate::alert::Why::Escalated { level: 1 },
            name: "target-failing".into(),
            target: Some("camera".into()),
            labels: Default::default(),
            severity: crate::alert::Severity::Critical,
            summary: "camera is failing".into(),
            started_at: 1,
            resolved_at: None,
            incident: Some("camera-1".into()),
            suppressed_by: Some("usb-bus".into()),
        };
        let n = Notification {
            key: "k".into(),
            channel: "ops".into(),
            created_at: 2,
            severity: crate::alert::Severity::Critical,
            items: vec![item],
        };
        let who = IdentityView {
            name: "RVM-017".into(),
            hardware_id: Some("hw".into()),
            site: None,
        };
        let body = body(&n, &who);
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let names = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&body), keys(&schema["properties"]));
        assert_eq!(names(&schema["required"]), keys(&body));
        let item_schema = &schema["properties"]["items"]["items"];
        let item = &body["items"][0];
        for k in keys(item) {
            assert!(
                item_schema["properties"].get(&k).is_some(),
                "{k} is not in the schema"
            );
        }
        for k in names(&item_schema["required"]) {
            assert!(item.get(&k).is_some(), "{k} is required by the schema");
        }
        let kinds = &item_schema["properties"]["why"]["properties"]["kind"]["enum"];
        assert!(kinds.as_array().unwrap().contains(&item["why"]["kind"]));
        assert_eq!(body["version"], schema["properties"]["version"]["const"]);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
