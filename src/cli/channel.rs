//! `rvm-watchdog test-channel NAME`: sends a test notification over one
//! channel of the configuration on disk (the daemon need not run, nor have
//! reloaded it) and prints the receiver's answer: what an operator runs
//! right after editing `watchdog.toml`. Nothing is written to the outbox.

use std::time::Instant;

use crate::alert::{Item, Notification, Severity, Why};
use crate::config;
use crate::delivery::Outcome;
use crate::status::IdentityView;

use super::FileArgs;

/// `test-channel NAME`
#[derive(Debug, Clone, clap::Args)]
pub struct TestChannelArgs {
    /// The channel, as named in `[channels.NAME]`.
    pub channel: String,
    /// Files to read.
    #[command(flatten)]
    pub files: FileArgs,
}

/// Sends the test notification; the exit code: 0 delivered, 1 the receiver
/// refused it or could not be reached, 3 no such channel or a configuration
/// that does not load.
pub fn test_channel(args: &TestChannelArgs, out: &mut impl std::io::Write) -> std::io::Result<u8> {
    let loaded = config::load(&args.files.sources());
    let Some(config) = loaded.config else {
        for d in &loaded.diagnostics {
            writeln!(out, "{d}")?;
        }
        writeln!(
            out,
            "the configuration is invalid; run `rvm-watchdog check`"
        )?;
        return Ok(3);
    };
    let Some(channel) = config.channels.get(&args.channel) else {
        let names: Vec<&str> = config.channels.keys().map(String::as_str).collect();
        if names.is_empty() {
            writeln!(
                out,
                "no channel named \"{}\": the configuration has none",
                args.channel
            )?;
        } else {
            writeln!(
                out,
                "no channel named \"{}\"; the channels are: {}",
                args.channel,
                names.join(", ")
            )?;
        }
        return Ok(3);
    };
    let http = crate::probe::Context::new(config.daemon.host_root.clone()).http;
    let notifiers = crate::delivery::task::notifiers(&config, &http);
    let Some(notifier) = notifiers.get(&args.channel) else {
        writeln!(
            out,
            "channel \"{}\" is of kind {}, which this version does not deliver yet",
            args.channel,
            channel.kind.as_str()
        )?;
        return Ok(3);
    };
    let identity = IdentityView::of(&config);
    let n = notification(&args.channel, &identity);
    writeln!(
        out,
        "sending a test notification over {} ({}) ...",
        args.channel,
        channel.kind.as_str()
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let outcome = runtime.block_on(notifier.send(&n, &identity));
    let ms = started.elapsed().as_millis();
    let answer = outcome.answer();
    match &outcome {
        Outcome::Delivered(_) => {
            writeln!(out, "delivered in {ms} ms: {answer}")?;
            Ok(0)
        }
        Outcome::Retry { .. } => {
            writeln!(
                out,
                "not delivered ({ms} ms): {answer}\n(the daemon would retry this with backoff)"
            )?;
            Ok(1)
        }
        Outcome::Failed(_) => {
            writeln!(
                out,
                "refused ({ms} ms): {answer}\n(the daemon would not retry this: fix the channel)"
            )?;
            Ok(1)
        }
    }
}

/// The test notification: one notice, its key unique to this run.
fn notification(channel: &str, identity: &IdentityView) -> Notification {
    let now = crate::metrics::collect::now_ms();
    let labels = [("channel".to_owned(), channel.to_owned())].into();
    let fingerprint = crate::alert::fingerprint("channel-test", None, &labels);
    Notification {
        key: format!("test-{channel}-{now}"),
        channel: channel.to_owned(),
        created_at: now,
        severity: Severity::Info,
        items: vec![Item {
            fingerprint,
            why: Why::Notice,
            name: "channel-test".into(),
            target: None,
            labels,
            severity: Severity::Info,
            summary: format!(
                "a test of channel {channel} from {}, sent with rvm-watchdog test-channel",
                identity.name
            ),
            started_at: now,
            resolved_at: None,
            incident: None,
            suppressed_by: None,
        }],
    }
}
