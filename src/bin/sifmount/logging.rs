//! Where log lines go: standard error until the mount process detaches from its caller,
//! the system log (syslog(3): the journal on systemd machines) after that, where an
//! administrator looks for a daemon's messages. The filter is the same either way, so `-d`
//! and `RUST_LOG` mean the same in the foreground and in the background.

use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, Log, Metadata, Record};

/// The name syslog shows for every line (and journalctl -t selects by).
const IDENT: &std::ffi::CStr = c"sifmount";

/// Set once, by [`to_syslog`]; never unset, since the standard error it replaced is
/// /dev/null from then on.
static SYSLOG: AtomicBool = AtomicBool::new(false);

/// env_logger's filter and format for standard error, with syslog(3) in its place once
/// the process is a daemon.
struct Logger {
    stderr: env_logger::Logger,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.stderr.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.stderr.matches(record) {
            return;
        }
        if SYSLOG.load(Ordering::Relaxed) {
            syslog(record);
        } else {
            self.stderr.log(record);
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

/// Default level warn; info from sifmount itself when serving in the foreground (so that
/// "mounted" and "unmounted" show); debug everywhere with `-d`. `RUST_LOG` overrides all.
///
/// fuser's session warns "Failed to umount filesystem" whenever the mount was already
/// removed from outside (`umount`, `sifmount -u`), which is the normal way a mount ends;
/// its real failures are errors, so only those are shown unless `-d`.
pub fn init(debug: bool, serving_in_foreground: bool) {
    let default = if debug {
        "debug"
    } else if serving_in_foreground {
        "warn,sifmount=info,fuser::session=error"
    } else {
        "warn,fuser::session=error"
    };
    let stderr =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .build();
    let max = stderr.filter();
    // Only fails when a logger is already set, and main calls this first, once.
    if log::set_boxed_logger(Box::new(Logger { stderr })).is_ok() {
        log::set_max_level(max);
    }
}

/// From now on, log lines go to the system log (facility daemon, ident "sifmount", with
/// the pid), not to standard error: the daemon calls this as it leaves its caller's
/// terminal behind.
pub fn to_syslog() {
    sifmount::sys::open_syslog(IDENT);
    SYSLOG.store(true, Ordering::Relaxed);
}

/// The syslog priority (within the facility chosen by openlog) of a log level.
fn priority(level: Level) -> libc::c_int {
    match level {
        Level::Error => libc::LOG_ERR,
        Level::Warn => libc::LOG_WARNING,
        Level::Info => libc::LOG_INFO,
        Level::Debug | Level::Trace => libc::LOG_DEBUG,
    }
}

/// The text of a line: sifmount's own as they are, other crates' (fuser) with their
/// module, as env_logger shows them. A NUL would cut the line short, so it is escaped.
fn line(record: &Record) -> std::ffi::CString {
    let text = if record.target().starts_with("sifmount") {
        record.args().to_string()
    } else {
        format!("{}: {}", record.target(), record.args())
    };
    let text = text.replace('\0', "\\0");
    // No NUL is left in the text.
    std::ffi::CString::new(text).unwrap_or_default()
}

fn syslog(record: &Record) {
    let text = line(record);
    sifmount::sys::syslog(priority(record.level()), &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(Level::Error), libc::LOG_ERR);
        assert_eq!(priority(Level::Warn), libc::LOG_WARNING);
        assert_eq!(priority(Level::Info), libc::LOG_INFO);
        assert_eq!(priority(Level::Debug), libc::LOG_DEBUG);
        assert_eq!(priority(Level::Trace), libc::LOG_DEBUG);
    }

    /// The text `line` gives a record of `target` saying `args`.
    fn text(target: &str, args: std::fmt::Arguments) -> String {
        let record = Record::builder().target(target).args(args).build();
        line(&record).into_string().expect("the line is UTF-8")
    }

    #[test]
    fn lines_name_foreign_modules_and_escape_nul() {
        assert_eq!(
            text("sifmount::tree::volume", format_args!("a\0b")),
            "a\\0b"
        );
        assert_eq!(
            text("fuser::reply", format_args!("Reply not sent")),
            "fuser::reply: Reply not sent"
        );
    }
}
