//! Silences and maintenance windows: what mutes alerts, and when.
//!
//! A **silence** mutes the alerts its matcher picks from its start to its
//! expiry. A **maintenance window** mutes them while it is in effect: once
//! (from, until) or every week at local times (`sun 02:00-03:00`,
//! `mon-fri 22:00-06:00`, `02:00-03:00` for every day). Neither hides the
//! resolution of an alert that was sent.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::{Alert, Ms, Severity};

/// Which alerts: every given field must match. `*` in a name or target
/// matches any run of characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// The alert's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The alert's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The alert's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

impl Matcher {
    /// Whether it picks `alert`.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.matches_parts(&alert.name, alert.target.as_deref(), alert.severity)
    }

    /// Whether it picks an alert or notice of this name, target and severity.
    pub fn matches_parts(&self, name: &str, target: Option<&str>, severity: Severity) -> bool {
        self.name.as_deref().is_none_or(|p| glob(p, name))
            && self
                .target
                .as_deref()
                .is_none_or(|p| target.is_some_and(|t| glob(p, t)))
            && self.severity.is_none_or(|s| s == severity)
    }

    /// For people: `target=camera severity=critical`, or `everything`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.target {
            parts.push(format!("target={t}"));
        }
        if let Some(n) = &self.name {
            parts.push(format!("name={n}"));
        }
        if let Some(s) = self.severity {
            parts.push(format!("severity={}", s.as_str()));
        }
        if parts.is_empty() {
            "everything".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// `*` matches any run of characters; everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A silence. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Which alerts.
    pub matcher: Matcher,
    /// In effect from.
    pub starts_at: Ms,
    /// Until (its expiry).
    pub ends_at: Ms,
    /// Why, for people.
    pub reason: String,
    /// Who made it.
    pub by: String,
    /// Made at.
    pub created_at: Ms,
}

impl Silence {
    /// Whether it is in effect at `now`.
    pub fn active(&self, now: Ms) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

/// A maintenance window. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// Its id.
    pub id: String,
    /// When.
    pub schedule: Schedule,
    /// Which alerts (every one by default).
    pub matcher: Matcher,
    /// Why, for people.
    pub reason: String,
    /// Who made it.
    pub by: String,
    /// Made at.
    pub created_at: Ms,
}

/// When a maintenance window is in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Schedule {
    /// Once.
    Once {
        /// From.
        from: Ms,
        /// Until; `None` until it is turned off.
        until: Option<Ms>,
    },
    /// Every week.
    Weekly {
        /// As written: `sun 02:00-03:00`.
        every: String,
    },
}

impl Maintenance {
    /// Whether it is in effect at `now` (local time in `zone`).
    pub fn active(&self, now: Ms, zone: &TimeZone) -> bool {
        match &self.schedule {
            Schedule::Once { from, until } => *from <= now && until.is_none_or(|u| now < u),
            Schedule::Weekly { every } => Weekly::parse(every).is_ok_and(|w| w.active(now, zone)),
        }
    }

    /// Whether it can never be in effect again after `now`.
    pub fn over(&self, now: Ms) -> bool {
        matches!(self.schedule, Schedule::Once { until: Some(u), .. } if u <= now)
    }
}

/// Days of the week and a time of day, local: `sun 02:00-03:00`,
/// `mon-fri 22:00-06:00` (past midnight: it ends the next day),
/// `sat,sun 00:00-24:00`, or `02:00-03:00` for every day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weekly {
    /// The days a window starts on; every day when empty.
    pub days: Vec<Weekday>,
    /// Start, local.
    pub start: Time,
    /// How long, in minutes (up to a day).
    pub minutes: u32,
}

const DAYS: [(&str, &str, Weekday); 7] = [
    ("mon", "monday", Weekday::Monday),
    ("tue", "tuesday", Weekday::Tuesday),
    ("wed", "wednesday", Weekday::Wednesday),
    ("thu", "thursday", Weekday::Thursday),
    ("fri", "friday", Weekday::Friday),
    ("sat", "saturday", Weekday::Saturday),
    ("sun", "sunday", Weekday::Sunday),
];

fn day(text: &str) -> Result<Weekday, String> {
    let t = text.trim().to_ascii_lowercase();
    DAYS.iter()
        .find(|(short, long, _)| t == *short || t == *long)
        .map(|(_, _, d)| *d)
        .ok_or_else(|| {
            format!("{text:?} is not a day; expected mon, tue, wed, thu, fri, sat or sun")
        })
}

fn clock(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time of day like \"02:00\"");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Weekly {
    /// Reads `[days] HH:MM-HH:MM`. See [`Weekly`].
    pub fn parse(text: &str) -> Result<Weekly, String> {
        let text = text.trim();
        let (days_text, times) = match text.rsplit_once(char::is_whitespace) {
            Some((d, t)) => (d.trim(), t),
            None => ("", text),
        };
        let (from, to) = times
            .split_once('-')
            .ok_or_else(|| format!("{times:?} is not a time range like \"02:00-03:00\""))?;
        let (from, to) = (clock(from)?, clock(to)?);
        if from == 24 * 60 {
            return Err(format!("{times:?} starts at 24:00; start at 00:00"));
        }
        let minutes = if to > from {
            to - from
        } else {
            to + 24 * 60 - from
        };
        let mut days = Vec::new();
        for part in days_text.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        if !days.contains(&d) {
                            days.push(d);
                        }
                        if d == b {
                            break;
                        }
                        d = d.next();
                    }
                }
                None => {
                    let d = day(part)?;
                    if !days.contains(&d) {
                        days.push(d);
                    }
                }
            }
        }
        let start =
            Time::new((from / 60) as i8, (from % 60) as i8, 0, 0).map_err(|e| e.to_string())?;
        Ok(Weekly {
            days,
            start,
            minutes,
        })
    }

    /// Whether a window is open at `now` (local time in `zone`).
    pub fn active(&self, now: Ms, zone: &TimeZone) -> bool {
        let Ok(at) = jiff::Timestamp::from_millisecond(now as i64) else {
            return false;
        };
        let local = at.to_zoned(zone.clone());
        let today = local.date();
        // A window that began today or yesterday may hold `now`.
        for back in 0..2i64 {
            let Ok(date) = today.checked_sub(jiff::Span::new().days(back)) else {
                continue;
            };
            if !self.days.is_empty() && !self.days.contains(&date.weekday()) {
                continue;
            }
            let Ok(start) = date.to_datetime(self.start).to_zoned(zone.clone()) else {
                continue;
            };
            let start_ms = start.timestamp().as_millisecond();
            let end_ms = start_ms + i64::from(self.minutes) * 60_000;
            if start_ms <= now as i64 && (now as i64) < end_ms {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("camera", "camera"));
        assert!(!glob("camera", "cameras"));
        assert!(glob("cam*", "camera"));
        assert!(glob("*era", "camera"));
        assert!(glob("c*m*a", "camera"));
        assert!(glob("*", ""));
        assert!(!glob("c*x", "camera"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn weekly_windows_read_days_and_times() {
        let w = Weekly::parse("sun 02:00-03:00").unwrap();
        assert_eq!(w.days, vec![Weekday::Sunday]);
        assert_eq!(w.minutes, 60);
        let w = Weekly::parse("mon-fri 22:00-06:00").unwrap();
        assert_eq!(w.days.len(), 5);
        assert_eq!(w.minutes, 8 * 60);
        let w = Weekly::parse("02:00-03:00").unwrap();
        assert!(w.days.is_empty());
        assert!(Weekly::parse("sunday 02:00-03:00").is_ok());
        assert!(Weekly::parse("sat,sun 00:00-24:00").unwrap().minutes == 24 * 60);
        for bad in [
            "sun 2-3",
            "funday 02:00-03:00",
            "sun 25:00-26:00",
            "sun 02:00",
        ] {
            assert!(Weekly::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    fn at(zone: &TimeZone, text: &str) -> Ms {
        let dt: jiff::civil::DateTime = text.parse().unwrap();
        dt.to_zoned(zone.clone())
            .unwrap()
            .timestamp()
            .as_millisecond() as Ms
    }

    #[test]
    fn a_sunday_window_is_open_sunday_night_in_local_time_only() {
        let zone = TimeZone::get("Asia/Jakarta").unwrap();
        let w = Weekly::parse("sun 02:00-03:00").unwrap();
        // 2026-12-06 is a Sunday.
        assert!(w.active(at(&zone, "2026-12-06T02:00"), &zone));
        assert!(w.active(at(&zone, "2026-12-06T02:59"), &zone));
        assert!(!w.active(at(&zone, "2026-12-06T03:00"), &zone));
        assert!(!w.active(at(&zone, "2026-12-06T01:59"), &zone));
        assert!(!w.active(at(&zone, "2026-12-07T02:30"), &zone));
        // The same instant read in UTC is 19:30 on Saturday: not in a UTC window.
        assert!(!w.active(at(&zone, "2026-12-06T02:30"), &TimeZone::UTC));
    }

    #[test]
    fn a_window_past_midnight_ends_the_next_day() {
        let zone = TimeZone::UTC;
        let w = Weekly::parse("fri 22:00-06:00").unwrap();
        // 2026-12-04 is a Friday.
        assert!(w.active(at(&zone, "2026-12-04T23:00"), &zone));
        assert!(w.active(at(&zone, "2026-12-05T05:59"), &zone));
        assert!(!w.active(at(&zone, "2026-12-05T06:00"), &zone));
        assert!(!w.active(at(&zone, "2026-12-05T23:00"), &zone));
    }
}
