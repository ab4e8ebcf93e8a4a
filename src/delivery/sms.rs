//! The SMS channel, through an HTTP gateway: one POST per phone number.
//!
//! Two styles:
//!
//! - `twilio` (the default): a form POST with `To`, `From` (when the
//!   channel has one) and `Body`, the style of Twilio's Messages API and of
//!   the many gateways that copy it;
//! - `template`: the channel's `template` with `{to}`, `{from}`,
//!   `{message}`, `{username}` and `{password}` filled in, sent with its
//!   `content-type`; each value is escaped for that type (JSON string,
//!   form field, or as it is).
//!
//! A `username` with a `password-file` goes as HTTP basic auth in both
//! styles; the password is read at each attempt, so a rotated token takes
//! effect at once.
//!
//! Each message fits one SMS: 160 characters of the GSM-7 alphabet, or 70
//! when it needs any other character (UCS-2); a longer one is cut, ends in
//! `...`, and the delivery log says it was cut. A number the gateway took
//! is not sent again when another number of the same notification is
//! retried.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::{Notifier, Outcome, Sending, classify};
use crate::alert::Notification;
use crate::config::SmsStyle;
use crate::status::IdentityView;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = ["to", "from", "message", "username", "password"];

/// One SMS: this many GSM-7 septets.
pub const GSM7_MAX: usize = 160;
/// One SMS: this many UCS-2 units.
pub const UCS2_MAX: usize = 70;

/// An SMS channel.
pub struct Sms {
    /// The gateway.
    pub url: String,
    /// Account.
    pub username: Option<String>,
    /// Token file.
    pub password_file: Option<PathBuf>,
    /// Sender.
    pub from: Option<String>,
    /// Phone numbers.
    pub to: Vec<String>,
    /// How each request is shaped.
    pub style: SmsStyle,
    /// How long an attempt may take.
    pub timeout: Duration,
    /// The shared client.
    pub http: reqwest::Client,
    /// Per notification key, the numbers that are done with (taken or
    /// refused for good), while another is retried.
    done: Mutex<BTreeMap<String, BTreeMap<String, Outcome>>>,
}

impl Sms {
    /// A channel with nothing sent yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: String,
        username: Option<String>,
        password_file: Option<PathBuf>,
        from: Option<String>,
        to: Vec<String>,
        style: SmsStyle,
        timeout: Duration,
        http: reqwest::Client,
    ) -> Sms {
        Sms {
            url,
            username,
            password_file,
            from,
            to,
            style,
            timeout,
            http,
            done: Mutex::new(BTreeMap::new()),
        }
    }
}

/// The characters of the GSM-7 default alphabet, one septet each.
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The characters of its extension table, two septets each.
const GSM7_EXT: &str = "^{}\\[~]|€\u{c}";

fn septets(c: char) -> Option<usize> {
    if GSM7.contains(c) {
        Some(1)
    } else if GSM7_EXT.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// `text` cut to one SMS, and whether it was cut: 160 septets when every
/// character is in GSM-7, else 70 UCS-2 units.
pub fn fit(text: &str) -> (String, bool) {
    let gsm = text.chars().all(|c| septets(c).is_some());
    let (max, size): (usize, fn(char) -> usize) = if gsm {
        (GSM7_MAX, |c| septets(c).unwrap_or(1))
    } else {
        (UCS2_MAX, char::len_utf16)
    };
    if text.chars().map(size).sum::<usize>() <= max {
        return (text.to_owned(), false);
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + size(c) > max - 3 {
            break;
        }
        used += size(c);
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out.push_str("...");
    (out, true)
}

/// The message: the email subject's words (how bad, where, what, for how
/// long), then the first item's summary while it fits.
pub fn message(n: &Notification, who: &IdentityView) -> String {
    let head = super::email::subject(n, who);
    match n.items.first() {
        Some(i) if !i.summary.is_empty() => {
            let long = format!("{head} - {}", i.summary);
            if fit(&long).1 { head } else { long }
        }
        _ => head,
    }
}

/// How a value is escaped in a body of `content_type`.
fn escape(content_type: &str, value: &str) -> String {
    let ct = content_type.to_ascii_lowercase();
    if ct.contains("json") {
        let quoted = serde_json::Value::String(value.to_owned()).to_string();
        quoted[1..quoted.len() - 1].to_owned()
    } else if ct.contains("x-www-form-urlencoded") {
        form_encode(value)
    } else {
        value.to_owned()
    }
}

fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Each `{name}` of `template` (a name of lower-case letters; any other
/// brace is the body's own), as (byte range, name).
fn scan(template: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = template[from..].find('{').map(|i| i + from) {
        let name_len = template[i + 1..]
            .bytes()
            .take_while(u8::is_ascii_lowercase)
            .count();
        let end = i + 1 + name_len;
        if name_len > 0 && template[end..].starts_with('}') {
            out.push((i..end + 1, &template[i + 1..end]));
            from = end + 1;
        } else {
            from = i + 1;
        }
    }
    out
}

/// `template` with its placeholders filled in from `values`, each escaped
/// for `content_type`. Unknown placeholders were refused by `check` and
/// stay as written.
pub fn fill(template: &str, content_type: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (range, name) in scan(template) {
        if let Some(v) = values.get(name) {
            out.push_str(&template[at..range.start]);
            out.push_str(&escape(content_type, v));
            at = range.end;
        }
    }
    out.push_str(&template[at..]);
    out
}

/// The placeholders `template` names.
pub fn placeholders(template: &str) -> Vec<String> {
    scan(template)
        .into_iter()
        .map(|(_, n)| n.to_owned())
        .collect()
}

impl Sms {
    fn password(&self) -> Result<Option<String>, String> {
        let Some(file) = &self.password_file else {
            return Ok(None);
        };
        crate::trust::secret_file(file)?;
        std::fs::read_to_string(file)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|e| format!("cannot read {}: {e}", file.display()))
    }

    async fn one(&self, number: &str, text: &str, password: Option<&str>) -> Outcome {
        let mut request = self.http.post(&self.url).timeout(self.timeout);
        if let (Some(user), Some(pass)) = (&self.username, password) {
            request = request.basic_auth(user, Some(pass));
        }
        request = match &self.style {
            SmsStyle::Twilio => {
                let mut form = vec![("To", number)];
                if let Some(from) = &self.from {
                    form.push(("From", from));
                }
                form.push(("Body", text));
                let body: Vec<String> = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", form_encode(v)))
                    .collect();
                request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.join("&"))
            }
            SmsStyle::Template { body, content_type } => {
                let values = BTreeMap::from([
                    ("to", number.to_owned()),
                    ("from", self.from.clone().unwrap_or_default()),
                    ("message", text.to_owned()),
                    ("username", self.username.clone().unwrap_or_default()),
                    ("password", password.unwrap_or_default().to_owned()),
                ]);
                request
                    .header("content-type", content_type)
                    .body(fill(body, content_type, &values))
            }
        };
        match request.send().await {
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
    }
}

/// The outcome of a notification from each number's.
fn overall(to: &[String], done: &BTreeMap<String, Outcome>, cut: bool) -> Outcome {
    let mut parts: Vec<String> = to
        .iter()
        .filter_map(|n| Some(format!("{n}: {}", done.get(n)?.answer())))
        .collect();
    if cut {
        parts.push("message cut to one SMS".into());
    }
    let answer = parts.join("; ");
    let retry: Vec<&Outcome> = to
        .iter()
        .filter_map(|n| done.get(n))
        .filter(|o| matches!(o, Outcome::Retry { .. }))
        .collect();
    if !retry.is_empty() {
        let after = retry
            .iter()
            .filter_map(|o| match o {
                Outcome::Retry { after, .. } => *after,
                _ => None,
            })
            .max();
        return Outcome::Retry { why: answer, after };
    }
    if done.values().any(|o| matches!(o, Outcome::Failed(_))) {
        Outcome::Failed(answer)
    } else {
        Outcome::Delivered(answer)
    }
}

impl Notifier for Sms {
    fn send<'a>(&'a self, n: &'a Notification, who: &'a IdentityView) -> Sending<'a> {
        Box::pin(async move {
            let (text, cut) = fit(&message(n, who));
            let password = match self.password() {
                Ok(p) => p,
                Err(why) => {
                    return Outcome::Retry {
                        why: format!("cannot read the gateway's password: {why}"),
                        after: None,
                    };
                }
            };
            let mut done = self
                .done
                .lock()
                .ok()
                .and_then(|mut d| d.remove(&n.key))
                .unwrap_or_default();
            for number in &self.to {
                if matches!(
                    done.get(number),
                    Some(Outcome::Delivered(_) | Outcome::Failed(_))
                ) {
                    continue;
                }
                let outcome = self.one(number, &text, password.as_deref()).await;
                done.insert(number.clone(), outcome);
            }
            let outcome = overall(&self.to, &done, cut);
            if matches!(outcome, Outcome::Retry { .. })
                && let Ok(mut d) = self.done.lock()
            {
                // Kept only while retried; bounded by the outbox.
                d.insert(n.key.clone(), done);
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gsm7_message_fits_160_and_others_70() {
        let short = "[CRITICAL] RVM-017: camera target-failing 3m";
        assert_eq!(fit(short), (short.to_owned(), false));
        let long = "x".repeat(200);
        let (cut, was) = fit(&long);
        assert!(was);
        assert_eq!(cut.chars().count(), 160);
        assert!(cut.ends_with("..."));
        // Extension characters count two.
        let braces = "{".repeat(81);
        let (cut, was) = fit(&braces);
        assert!(was);
        assert_eq!(cut, format!("{}...", "{".repeat(78)));
        assert!(!fit(&"{".repeat(80)).1);
        // One character outside GSM-7: UCS-2, 70 units.
        let thai = format!("{} ภ", "a".repeat(80));
        let (cut, was) = fit(&thai);
        assert!(was);
        assert_eq!(cut.encode_utf16().count(), 70);
        assert!(!fit(&"é".repeat(160)).1, "é is in GSM-7");
    }

    #[test]
    fn a_template_is_filled_and_escaped_for_its_content_type() {
        let values = BTreeMap::from([
            ("to", "+6281234567890".to_owned()),
            ("message", "camera \"down\" & out".to_owned()),
        ]);
        assert_eq!(
            fill(
                r#"{"to":"{to}","text":"{message}","x":"{nope}","y":{"z":1}}"#,
                "application/json",
                &values
            ),
            r#"{"to":"+6281234567890","text":"camera \"down\" & out","x":"{nope}","y":{"z":1}}"#
        );
        assert_eq!(
            fill(
                "to={to}&msg={message}",
                "application/x-www-form-urlencoded",
                &values
            ),
            "to=%2B6281234567890&msg=camera+%22down%22+%26+out"
        );
        assert_eq!(
            placeholders(r#"{"a":"{to}","b":"{message}"} {x} {Y} {}"#),
            ["to", "message", "x"]
        );
    }

    #[test]
    fn a_number_taken_is_not_sent_again_when_another_is_retried() {
        let to = vec!["+1".to_owned(), "+2".to_owned()];
        let mut done = BTreeMap::new();
        done.insert("+1".to_owned(), Outcome::Delivered("HTTP 201".into()));
        done.insert(
            "+2".to_owned(),
            Outcome::Retry {
                why: "HTTP 503".into(),
                after: None,
            },
        );
        let o = overall(&to, &done, false);
        assert_eq!(o.as_str(), "retry");
        assert_eq!(o.answer(), "+1: HTTP 201; +2: HTTP 503");
        done.insert("+2".to_owned(), Outcome::Failed("HTTP 400".into()));
        assert_eq!(overall(&to, &done, true).as_str(), "failed");
        done.insert("+2".to_owned(), Outcome::Delivered("HTTP 201".into()));
        let o = overall(&to, &done, true);
        assert_eq!(o.as_str(), "delivered");
        assert!(o.answer().ends_with("message cut to one SMS"));
    }
}
