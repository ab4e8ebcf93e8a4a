//! Hand-written proxies for the few systemd members the supervisor uses.
//! They are kept to what systemd 245 (JetPack 5) through 252 all serve:
//! reading a property an older systemd lacks is a D-Bus error, so unit and
//! service state is read with `GetAll` and missing properties default.

use zbus::OwnedObjectPath;

/// systemd's bus name.
pub const SYSTEMD: &str = "org.freedesktop.systemd1";
/// The prefix of every unit's object path.
pub const UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit";
/// The unit interface.
pub const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
/// The service interface.
pub const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";

/// `org.freedesktop.systemd1.Manager`
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    /// Ask for unit signals; systemd sends none to clients that did not.
    fn subscribe(&self) -> zbus::Result<()>;
    /// The object of a loaded unit; `NoSuchUnit` when it is not loaded (no side effect).
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// Load a unit (from its file, or as `not-found`) and return its object.
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queue a start job.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queue a stop job.
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queue a restart job.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Clear a unit's failed state and start-limit counter.
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    /// Send a signal to a unit's processes (`whom`: "main" or "all").
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;
    /// A job finished: `result` is done, canceled, timeout, failed, dependency or skipped.
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
    /// A unit was loaded.
    #[zbus(signal)]
    fn unit_new(&self, id: String, unit: OwnedObjectPath) -> zbus::Result<()>;
    /// A daemon-reload started (`true`) or finished (`false`).
    #[zbus(signal)]
    fn reloading(&self, active: bool) -> zbus::Result<()>;
}

/// The object path of a unit, escaped as systemd does: every byte that is
/// not an ASCII letter or digit (and a leading digit) becomes `_xx`.
pub fn unit_path(unit: &str) -> String {
    let mut path = String::with_capacity(UNIT_PATH_PREFIX.len() + 1 + unit.len() * 3);
    path.push_str(UNIT_PATH_PREFIX);
    path.push('/');
    if unit.is_empty() {
        path.push('_');
        return path;
    }
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            path.push(b as char);
        } else {
            path.push_str(&format!("_{b:02x}"));
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_are_escaped_like_systemd() {
        assert_eq!(
            unit_path("myrvm-edge.service"),
            "/org/freedesktop/systemd1/unit/myrvm_2dedge_2eservice"
        );
        assert_eq!(
            unit_path("dbus.socket"),
            "/org/freedesktop/systemd1/unit/dbus_2esocket"
        );
        assert_eq!(
            unit_path("1x.service"),
            "/org/freedesktop/systemd1/unit/_31x_2eservice"
        );
        assert_eq!(
            unit_path("a@b.service"),
            "/org/freedesktop/systemd1/unit/a_40b_2eservice"
        );
    }
}
