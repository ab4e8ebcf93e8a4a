//! How `check` words its diagnostics: values shown as the file writes
//! them (escaped, cut when long), parser and type errors in the operator's
//! words, duplicates traced to their first definition.

use rvm_watchdog::config::{self, Sources};

/// A configuration directory with `watchdog.toml` and one policy per entry.
struct Case {
    _temp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Case {
    fn new(config: &str, policies: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        std::fs::write(dir.join("watchdog.toml"), config).unwrap();
        std::fs::create_dir(dir.join("policies")).unwrap();
        for (name, text) in policies {
            std::fs::write(dir.join("policies").join(name), text).unwrap();
        }
        Self { _temp: temp, dir }
    }

    /// Every diagnostic, rendered, with the directory shown as `$DIR`.
    fn report(&self) -> Vec<String> {
        let loaded = config::load(&Sources {
            config_file: Some(self.dir.join("watchdog.toml")),
            policies_dir: Some(self.dir.join("policies")),
            ..Sources::default()
        });
        let dir = self.dir.display().to_string();
        loaded
            .diagnostics
            .iter()
            .map(|d| d.to_string().replace(&dir, "$DIR"))
            .collect()
    }
}

/// The report for one policy file (named `p.toml`), with an empty `watchdog.toml`.
fn policy(text: &str) -> Vec<String> {
    Case::new("", &[("p.toml", text)]).report()
}

/// The report for a `watchdog.toml` alone.
fn daemon(text: &str) -> Vec<String> {
    Case::new(text, &[]).report()
}

#[test]
fn control_and_direction_characters_are_escaped() {
    let lines =
        policy("[target]\nname = \"a\\u0000b\\u202Ec\"\nunit = 'x\u{202E} y.service\u{200F}'\n");
    assert_eq!(
        lines,
        [
            "$DIR/policies/p.toml:2:8: error: name \"a\\u0000b\\u202Ec\" may only hold lowercase letters, digits, '-', '_' and '.', and must start with a letter or digit",
            "$DIR/policies/p.toml:3:8: error: invalid unit name \"x\\u202E y.service\\u200F\"",
        ]
    );
    for line in &lines {
        assert!(
            !line.contains(['\0', '\u{202E}', '\u{200F}']),
            "raw control character in {line:?}"
        );
    }
}

#[test]
fn a_long_value_is_cut_and_its_length_given() {
    let long = "a".repeat(1_000_000);
    let lines = policy(&format!("[target]\nname = \"{long}\"\n"));
    let shown = format!("\"{}…\" (1000000 bytes)", "a".repeat(40));
    assert_eq!(
        lines,
        [format!(
            "$DIR/policies/p.toml:2:8: error: name {shown} is longer than 64 characters"
        )]
    );
}

#[test]
fn a_bare_word_is_told_it_needs_quotes() {
    assert_eq!(
        daemon("[log]\nlevel = info\n"),
        ["$DIR/watchdog.toml:2:9: error: strings need quotes: level = \"info\""]
    );
    assert_eq!(
        policy("[target]\nname = nvargus-daemon\n"),
        ["$DIR/policies/p.toml:2:8: error: strings need quotes: name = \"nvargus-daemon\""]
    );
    assert_eq!(
        policy("[target]\nname = \"a\"\nenabled = yes\n"),
        [
            "$DIR/policies/p.toml:3:11: error: yes is not a value: write true or false, in lowercase, without quotes"
        ]
    );
}

#[test]
fn a_duplicate_key_or_table_names_itself_and_its_first_definition() {
    assert_eq!(
        policy("[target]\nname = \"a\"\nname = \"b\"\n"),
        [
            "$DIR/policies/p.toml:3:1: error: `target.name` is defined twice; first at $DIR/policies/p.toml:2"
        ]
    );
    assert_eq!(
        policy(
            "[target]\nname = \"a\"\n\n[[probe]]\nkind = \"memory\"\n\n[target]\nunit = \"a.service\"\n"
        ),
        [
            "$DIR/policies/p.toml:7:2: error: table `[target]` is defined twice; first at $DIR/policies/p.toml:1"
        ]
    );
    assert_eq!(
        policy(
            "[target]\nname = \"a\"\n\n[[recovery]]\naction = \"restart\"\nbackoff = { max = \"1m\", max = \"2m\" }\n"
        ),
        [
            "$DIR/policies/p.toml:6:25: error: `recovery[0].backoff.max` is defined twice; first at $DIR/policies/p.toml:6"
        ]
    );
}

#[test]
fn numbers_are_echoed_as_written() {
    let probe = |line: &str| {
        policy(&format!(
            "[target]\nname = \"a\"\n\n[[probe]]\nkind = \"memory\"\n{line}\n"
        ))
    };
    assert_eq!(
        probe("fail-after = 99999999999999999999"),
        [
            "$DIR/policies/p.toml:6:14: error: `fail-after` = 99999999999999999999 is not a whole number from 0 to 4294967295"
        ]
    );
    assert_eq!(
        probe("fail-after = -1"),
        [
            "$DIR/policies/p.toml:6:14: error: `fail-after` = -1 is not a whole number from 0 to 4294967295"
        ]
    );
    assert_eq!(
        probe("fail-after = \"3\""),
        [
            "$DIR/policies/p.toml:6:14: error: `fail-after` = \"3\" is not a whole number from 0 to 4294967295; write it without quotes"
        ]
    );
    assert_eq!(
        probe("fail-after = 0x0"),
        ["$DIR/policies/p.toml:6:14: error: `fail-after` = 0x0 is out of range; expected 1 to 100"]
    );
    assert_eq!(
        probe("warn-above = 1e400"),
        ["$DIR/policies/p.toml:6:14: error: `warn-above` = 1e400 is too large a number"]
    );
    assert_eq!(
        probe("warn-above = 1.50e2"),
        [
            "$DIR/policies/p.toml:6:14: error: `warn-above` = 1.50e2 is out of range; expected 0 to 100"
        ]
    );
    assert_eq!(
        probe("interval = 1e3"),
        [
            "$DIR/policies/p.toml:6:12: error: invalid duration 1e3: write it as a string with a unit, like \"30s\""
        ]
    );
    assert_eq!(
        probe("interval = 99999999999999999999"),
        [
            "$DIR/policies/p.toml:6:12: error: invalid duration 99999999999999999999: write it as a string with a unit, like \"99999999999999999999s\""
        ]
    );
}

#[test]
fn duration_ranges_are_written_as_the_file_writes_durations() {
    let lines = daemon("[metrics]\nminute-retention = \"0s\"\n");
    assert!(
        lines.contains(&"$DIR/watchdog.toml:2:20: error: `minute-retention` = \"0s\" is out of range; expected \"1d\" to \"30d\"".to_owned()),
        "{lines:#?}"
    );
    let lines = policy(
        "[target]\nname = \"a\"\n\n[[probe]]\nkind = \"memory\"\ninterval = \"30m\"\ntimeout = \"1h\"\n",
    );
    assert_eq!(
        lines,
        [
            "$DIR/policies/p.toml:7:11: error: `timeout` = \"1h\" is longer than `interval` = \"30m\"; a check would still run when the next is due"
        ]
    );
}

#[test]
fn type_errors_name_the_key_and_what_it_takes() {
    assert_eq!(
        policy("[target]\nname = \"a\"\nenabled = \"yes\"\n"),
        [
            "$DIR/policies/p.toml:3:11: error: `enabled` = \"yes\" is not true or false; write it without quotes"
        ]
    );
    assert_eq!(
        policy("[target]\nname = \"a\"\ndepends-on = \"b\"\n"),
        [
            "$DIR/policies/p.toml:3:14: error: `depends-on` = \"b\" is not a list in brackets, like [\"a\", \"b\"]"
        ]
    );
    assert_eq!(
        policy("target = 3\n"),
        ["$DIR/policies/p.toml:1:10: error: `target` = 3 is not a table"]
    );
    assert_eq!(
        policy("[target]\nname = \"a\"\n\n[probe]\nkind = \"memory\"\n"),
        [
            "$DIR/policies/p.toml:4:1: error: table `[probe]` must be written `[[probe]]`: the file may hold several"
        ]
    );
    assert_eq!(
        policy(
            "[target]\nname = \"a\"\n\n[[probe]]\nkind = \"http\"\nurl = \"http://x\"\nexpect-status = [200, 70000]\n"
        ),
        [
            "$DIR/policies/p.toml:7:23: error: item 70000 of `expect-status` is not a whole number from 0 to 65535"
        ]
    );
}

/// None of the parser's or serde's own words reach the operator.
#[test]
fn no_parser_jargon_reaches_the_operator() {
    let mut lines = Vec::new();
    for value in [
        "info",
        "1.2.3",
        "99999999999999999999",
        "-99999999999999999999",
        "1e400",
        "\"x\"",
        "true",
        "[1, 2]",
        "{ a = 1 }",
        "1979-05-27",
        "inf",
        "nan",
        "0x",
        "+",
        "1_",
    ] {
        for key in [
            "fail-after",
            "warn-above",
            "interval",
            "name",
            "kernel-errors",
            "url",
        ] {
            lines.extend(policy(&format!(
                "[target]\nname = \"a\"\n\n[[probe]]\nkind = \"camera\"\ndevice = \"/dev/x\"\n{key} = {value}\n"
            )));
        }
        lines.extend(daemon(&format!(
            "[log]\nlevel = {value}\n[metrics]\nmax-disk-mib = {value}\n"
        )));
    }
    assert!(lines.len() > 50, "{} lines", lines.len());
    for jargon in [
        "i128",
        "u128",
        "i64",
        "u64",
        "u32",
        "u16",
        "u8",
        "f64",
        "`nan`",
        "`inf`",
        "float",
        "sequence",
        "struct",
        "map",
        "invalid type",
        "invalid value:",
        "Raw",
    ] {
        let found: Vec<&String> = lines.iter().filter(|l| l.contains(jargon)).collect();
        assert!(found.is_empty(), "{jargon:?} in {found:#?}");
    }
}

#[test]
fn a_fallback_names_another_channel_that_exists() {
    let lines = daemon(
        "[channels.primary]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/a\"\nfallback = \"bakup\"\n\n\
         [channels.backup]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/b\"\nfallback = \"backup\"\n",
    );
    assert_eq!(
        lines,
        [
            "$DIR/watchdog.toml:4:12: error: channel \"bakup\" is not defined; did you mean \"backup\"?",
            "$DIR/watchdog.toml:9:12: error: channel \"backup\" cannot be its own fallback",
        ]
    );
}

#[test]
fn an_sms_template_names_only_placeholders_it_has_values_for() {
    let lines = daemon(
        "[channels.sms]\nkind = \"sms\"\nurl = \"http://127.0.0.1:9/send\"\nto = [\"+6281234567890\"]\n\
         style = \"template\"\ntemplate = '{\"n\": \"{to}\", \"t\": \"{mesage}\", \"u\": \"{username}\"}'\n\n\
         [channels.twilio]\nkind = \"sms\"\nurl = \"http://127.0.0.1:9/send\"\nto = [\"+6281234567890\"]\n\
         content-type = \"text/plain\"\n\n\
         [channels.fleet]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9\"\nresend-every = \"1s\"\n",
    );
    assert_eq!(
        lines,
        [
            "$DIR/watchdog.toml:6:12: error: unknown placeholder \"{mesage}\" in `template`; did you mean \"{message}\"?",
            "$DIR/watchdog.toml:6:12: error: `template` uses {username} but the channel has no `username`",
            "$DIR/watchdog.toml:6:12: error: `template` has no {message}: the gateway would get no text",
            "$DIR/watchdog.toml:12:1: error: `content-type` applies only with style = \"template\"; a \"twilio\" channel sends a form with To, From and Body",
            "$DIR/watchdog.toml:17:16: error: `resend-every` = \"1s\" is out of range; expected \"10s\" to \"1h\"",
        ]
    );
}

#[test]
fn a_relays_ca_file_must_hold_a_certificate_and_needs_tls() {
    let lines = daemon(
        "[channels.mail]\nkind = \"email\"\nsmtp = \"127.0.0.1:25\"\ntls = \"none\"\nca-file = \"/proc/version\"\n\
         from = \"a@example.com\"\nto = [\"b@example.com\"]\n",
    );
    assert_eq!(
        lines,
        [
            "$DIR/watchdog.toml:5:1: error: `ca-file` has no use with tls = \"none\"; use \"starttls\" or \"tls\"",
            "$DIR/watchdog.toml:5:11: error: /proc/version holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ]
    );
}

#[test]
fn a_channels_secret_file_others_may_read_is_an_error_naming_it() {
    let case = Case::new("", &[]);
    let secret = case.dir.join("hook.secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let mode = |m| std::fs::Permissions::from_mode(m);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, mode(0o644)).unwrap();
    std::fs::write(
        case.dir.join("watchdog.toml"),
        format!(
            "[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/a\"\nsecret-file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    assert_eq!(
        case.report(),
        [
            "$DIR/watchdog.toml:4:15: error: secret file $DIR/hook.secret has mode 0644: group or others may read or write it (fix: chmod 600 $DIR/hook.secret)"
        ]
    );
    // Fixed as the message says: nothing to report.
    std::fs::set_permissions(&secret, mode(0o600)).unwrap();
    assert!(case.report().is_empty(), "{:?}", case.report());
}
