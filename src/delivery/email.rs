//! The email channel, through `lettre`: SMTP with STARTTLS (the default),
//! TLS from the first byte, or none (a relay on the machine); a login when
//! the channel has a `username` and `password-file`. Each notification is
//! one message with a plain-text and an HTML part, a subject that says how
//! bad, where and what (`[CRITICAL] RVM-017 Mall Kelapa Gading: camera
//! target-failing 3m`), and a `Message-ID` made from its idempotency key,
//! so a message sent twice reads as one.
//!
//! An answer in the 5xx range (a rejected recipient, a refused login) fails
//! for good; anything else (no connection, a timeout, a 4xx) is retried.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Notifier, Outcome, Sending};
use crate::alert::{Item, Notification, Why, human};
use crate::config::SmtpTls;
use crate::status::IdentityView;

/// An email channel.
pub struct Email {
    /// `host:port`.
    pub smtp: String,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// Login.
    pub username: Option<String>,
    /// The password's file.
    pub password_file: Option<PathBuf>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// How long an attempt may take.
    pub timeout: Duration,
    /// The CA trusted for the relay instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

fn what(i: &Item) -> String {
    let target = i.target.as_deref().unwrap_or("watchdog");
    match i.why {
        Why::Resolved => format!("{target} {} resolved", i.name),
        Why::Flapping => format!("{target} {} flapping", i.name),
        Why::Notice => format!("{target}: {}", i.summary),
        _ => format!("{target} {}", i.name),
    }
}

/// The subject: `[CRITICAL] NAME: what (for how long)`, and how many more.
pub fn subject(n: &Notification, who: &IdentityView) -> String {
    let first = &n.items[0];
    let lasting = match first.why {
        Why::Notice | Why::Resolved => String::new(),
        _ => {
            let ms = n.created_at.saturating_sub(first.started_at);
            if ms >= 60_000 {
                format!(" {}", human(ms - ms % 60_000))
            } else {
                String::new()
            }
        }
    };
    let more = match n.items.len() {
        1 => String::new(),
        k => format!(" (+{} more)", k - 1),
    };
    let text = format!(
        "[{}] {}: {}{lasting}{more}",
        n.severity.as_str().to_uppercase(),
        who.name,
        what(first)
    );
    text.chars().take(200).collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plain-text and HTML bodies.
pub fn bodies(n: &Notification, who: &IdentityView) -> (String, String) {
    let mut plain = who.name.clone();
    if let Some(site) = &who.site {
        plain.push_str(&format!(" ({site})"));
    }
    plain.push_str("\n\n");
    let mut html = format!("<h2>{}</h2>\n<ul>\n", escape(plain.trim()));
    for i in &n.items {
        let line = format!(
            "[{}] {} — {}: {}",
            i.severity.as_str(),
            i.why.as_str(),
            i.target.as_deref().unwrap_or("watchdog"),
            i.summary
        );
        plain.push_str(&format!("- {line}\n"));
        html.push_str(&format!("<li>{}</li>\n", escape(&line)));
    }
    html.push_str("</ul>\n");
    let footer = format!(
        "Notification {} on channel {}. Acknowledge: rvm-watchdog ack FINGERPRINT",
        n.key, n.channel
    );
    plain.push_str(&format!("\n{footer}\n"));
    html.push_str(&format!("<p><small>{}</small></p>\n", escape(&footer)));
    (plain, html)
}

fn build(e: &Email, n: &Notification, who: &IdentityView) -> Result<Message, String> {
    let from: Mailbox = e
        .from
        .parse()
        .map_err(|x| format!("sender {:?}: {x}", e.from))?;
    let mut m = Message::builder()
        .from(from)
        .subject(subject(n, who))
        .message_id(Some(format!("<{}@rvm-watchdog>", n.key)));
    for to in &e.to {
        let to: Mailbox = to.parse().map_err(|x| format!("recipient {to:?}: {x}"))?;
        m = m.to(to);
    }
    let (plain, html) = bodies(n, who);
    m.multipart(MultiPart::alternative_plain_html(plain, html))
        .map_err(|x| format!("cannot build the message: {x}"))
}

impl Email {
    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let (host, port) = match self.smtp.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("bad port in {:?}", self.smtp))?,
            ),
            None => (self.smtp.as_str(), 587),
        };
        let builder = match self.tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|x| x.to_string())?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|x| x.to_string())?
            }
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(port).timeout(Some(self.timeout));
        if let Some(file) = &self.ca_file {
            // Read at each attempt: a renewed CA takes effect at once.
            let pem =
                std::fs::read(file).map_err(|x| format!("cannot read {}: {x}", file.display()))?;
            let ca = Certificate::from_pem(&pem)
                .map_err(|x| format!("{} is not a PEM certificate: {x}", file.display()))?;
            let params = TlsParameters::builder(host.to_owned())
                .certificate_store(CertificateStore::None)
                .add_root_certificate(ca)
                .build_rustls()
                .map_err(|x| x.to_string())?;
            builder = builder.tls(match self.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let (Some(user), Some(file)) = (&self.username, &self.password_file) {
            let password = crate::trust::secret_file(file)
                .and_then(|()| {
                    std::fs::read_to_string(file)
                        .map_err(|x| format!("cannot read {}: {x}", file.display()))
                })?
                .trim()
                .to_owned();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(builder.build())
    }
}

impl Notifier for Email {
    fn send<'a>(&'a self, n: &'a Notification, who: &'a IdentityView) -> Sending<'a> {
        Box::pin(async move {
            let message = match build(self, n, who) {
                Ok(m) => m,
                Err(why) => return Outcome::Failed(why),
            };
            let transport = match self.transport() {
                Ok(t) => t,
                Err(why) => {
                    return Outcome::Retry {
                        why: format!("cannot set up SMTP to {}: {why}", self.smtp),
                        after: None,
                    };
                }
            };
            match transport.send(message).await {
                Ok(r) => Outcome::Delivered(format!(
                    "SMTP {}: {}",
                    r.code(),
                    r.message().collect::<Vec<_>>().join(" ")
                )),
                Err(e) if e.is_permanent() => Outcome::Failed(format!("SMTP {}: {e}", self.smtp)),
                Err(e) => Outcome::Retry {
                    why: format!("SMTP {}: {e}", self.smtp),
                    after: None,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    fn notification(started: u64, created: u64, items: usize) -> Notification {
        let item = Item {
            fingerprint: "f".into(),
            why: Why::Firing,
            name: "target-failing".into(),
            target: Some("camera".into()),
            labels: Default::default(),
            severity: Severity::Critical,
            summary: "camera is failing: unit myrvm-camera.service failed".into(),
            started_at: started,
            resolved_at: None,
            incident: None,
            suppressed_by: None,
        };
        Notification {
            key: "19abc-0123".into(),
            channel: "ops-email".into(),
            created_at: created,
            severity: Severity::Critical,
            items: vec![item; items],
        }
    }

    fn who() -> IdentityView {
        IdentityView {
            name: "RVM-017 Mall Kelapa Gading".into(),
            hardware_id: None,
            site: Some("Jakarta <North>".into()),
        }
    }

    #[test]
    fn the_subject_says_how_bad_where_what_and_for_how_long() {
        assert_eq!(
            subject(&notification(0, 200_000, 1), &who()),
            "[CRITICAL] RVM-017 Mall Kelapa Gading: camera target-failing 3m"
        );
        assert_eq!(
            subject(&notification(0, 5_000, 3), &who()),
            "[CRITICAL] RVM-017 Mall Kelapa Gading: camera target-failing (+2 more)"
        );
    }

    #[test]
    fn the_html_body_is_escaped_and_both_bodies_list_every_item() {
        let (plain, html) = bodies(&notification(0, 1, 2), &who());
        assert_eq!(plain.matches("camera is failing").count(), 2);
        assert!(html.contains("Jakarta &lt;North&gt;"), "{html}");
        assert!(!html.contains("<North>"));
        assert!(plain.contains("Notification 19abc-0123"));
    }
}
