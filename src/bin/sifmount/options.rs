//! The `-o OPT[,OPT...]` mount options, parsed without touching the system so that every
//! rule can be unit-tested.
//!
//! The option names follow libfuse and mount(8), because sifmount is also run as a mount
//! helper: `mount -t fuse.sifmount` (through mount.fuse3) passes whatever is in fstab, and
//! always adds `rw` or `ro` and often `dev,suid` of its own.

use sifmount::mount::MountOptions;

/// Largest `threads=` accepted; more only costs memory, the kernel queue is the limit.
const MAX_THREADS: usize = 256;

/// Kernel mount flags passed through, each with the flag it cancels (mount(8) semantics:
/// the last of a pair wins).
const KERNEL_FLAGS: &[(&str, &str)] = &[
    ("nosuid", "suid"),
    ("suid", "nosuid"),
    ("nodev", "dev"),
    ("dev", "nodev"),
    ("noexec", "exec"),
    ("exec", "noexec"),
    ("noatime", "atime"),
    ("atime", "noatime"),
    ("sync", "async"),
    ("async", "sync"),
    ("dirsync", ""),
];

/// Options that fstab and mount(8) use for themselves and hand on to helpers; they say
/// nothing about the file system, so they are ignored without a word.
const IGNORED: &[&str] = &[
    "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev", "nofail",
];

/// What `-o` asked for; defaults that depend on the system are filled in by
/// [`ParsedOptions::into_mount_options`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedOptions {
    pub allow_other: bool,
    pub allow_root: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub fsname: Option<String>,
    pub threads: Option<usize>,
    /// Kernel flags in the order given, contradicting pairs resolved to the last one.
    pub kernel_flags: Vec<String>,
    /// `ro` was the last of `ro`/`rw`: never open the image for writing.
    pub read_only: bool,
    /// `rw` was the last of `ro`/`rw`: the image must be opened for writing, and a mount
    /// that cannot write it is refused rather than made read-only.
    pub read_write: bool,
    /// `nonempty`: mount over a directory that has files in it (hiding them).
    pub nonempty: bool,
    /// `max_staged=`: the largest file accepted in `/cosign`, in bytes.
    pub max_staged: Option<u64>,
    /// `max_staged_files=`: the most files and directories held in `/cosign` at once.
    pub max_staged_files: Option<usize>,
    /// `max_staged_total=`: the most bytes held in `/cosign` at once.
    pub max_staged_total: Option<u64>,
    /// `require_signed`: only images with a verifying entry (the man page, CONTENT TRUST).
    pub require_signed: bool,
    /// `verify_drops`: refuse attaches whose signature does not verify.
    pub verify_drops: bool,
}

/// Values [`ParsedOptions::into_mount_options`] uses where `-o` says nothing.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub uid: u32,
    pub gid: u32,
    pub fsname: String,
    pub threads: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown mount option '{0}' (sifmount(1) lists the options -o accepts)")]
    Unknown(String),
    #[error("mount option '{0}' needs a value ({0}=...)")]
    MissingValue(String),
    #[error("mount option '{0}' takes no value")]
    UnexpectedValue(String),
    #[error("mount option '{option}': {reason}")]
    InvalidValue { option: String, reason: String },
    #[error("mount options allow_other and allow_root cannot be used together")]
    AllowOtherAndAllowRoot,
    #[error(
        "mount option max_staged={max_staged} is larger than max_staged_total={total}: \
         a file that size could never be staged"
    )]
    StagedOverTotal { max_staged: u64, total: u64 },
}

/// Parses every `-o` argument, in order; later options override earlier ones.
pub fn parse<S: AsRef<str>>(arguments: &[S]) -> Result<ParsedOptions, OptionError> {
    let mut parsed = ParsedOptions::default();
    for argument in arguments {
        for option in split(argument.as_ref()) {
            apply(&mut parsed, &option)?;
        }
    }
    if parsed.allow_other && parsed.allow_root {
        return Err(OptionError::AllowOtherAndAllowRoot);
    }
    if let (Some(max_staged), Some(total)) = (parsed.max_staged, parsed.max_staged_total) {
        if max_staged > total {
            return Err(OptionError::StagedOverTotal { max_staged, total });
        }
    }
    Ok(parsed)
}

/// Splits at commas, as libfuse does, with `\,` for a comma inside a value and `\\` for a
/// backslash. Empty items (`ro,,nosuid`, a trailing comma) are dropped.
fn split(argument: &str) -> Vec<String> {
    let mut options = Vec::new();
    let mut current = String::new();
    let mut chars = argument.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => current.push(next),
                None => current.push('\\'),
            },
            ',' => options.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    options.push(current);
    options.retain(|o| !o.is_empty());
    options
}

fn apply(parsed: &mut ParsedOptions, option: &str) -> Result<(), OptionError> {
    let (name, value) = match option.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (option, None),
    };
    if name.starts_with("x-") || name == "comment" || IGNORED.contains(&name) {
        return Ok(());
    }
    if let Some((flag, opposite)) = KERNEL_FLAGS.iter().find(|(flag, _)| *flag == name) {
        no_value(name, value)?;
        parsed
            .kernel_flags
            .retain(|f| f != flag && f.as_str() != *opposite);
        parsed.kernel_flags.push(flag.to_string());
        return Ok(());
    }
    match name {
        "ro" => {
            no_value(name, value)?;
            parsed.read_only = true;
            parsed.read_write = false;
        }
        "rw" => {
            no_value(name, value)?;
            parsed.read_only = false;
            parsed.read_write = true;
        }
        "nonempty" => {
            no_value(name, value)?;
            parsed.nonempty = true;
        }
        "require_signed" => {
            no_value(name, value)?;
            parsed.require_signed = true;
        }
        "verify_drops" => {
            no_value(name, value)?;
            parsed.verify_drops = true;
        }
        "max_staged" => {
            let value = needs_value(name, value)?;
            parsed.max_staged = Some(size(option, value)?);
        }
        "allow_other" => {
            no_value(name, value)?;
            parsed.allow_other = true;
        }
        "allow_root" => {
            no_value(name, value)?;
            parsed.allow_root = true;
        }
        // Always on: the kernel checks every access against the modes shown. Accepted
        // so that fstab lines written for other FUSE file systems keep working.
        "default_permissions" => no_value(name, value)?,
        "max_staged_files" => {
            let value = needs_value(name, value)?;
            let n: usize = value.parse().map_err(|_| invalid(option, "not a number"))?;
            if !(1..=MAX_STAGED_FILES_LIMIT).contains(&n) {
                return Err(invalid(
                    option,
                    &format!("the number of files must be 1 to {MAX_STAGED_FILES_LIMIT}"),
                ));
            }
            parsed.max_staged_files = Some(n);
        }
        "max_staged_total" => {
            let value = needs_value(name, value)?;
            parsed.max_staged_total = Some(size(option, value)?);
        }
        "uid" => parsed.uid = Some(id(name, value)?),
        "gid" => parsed.gid = Some(id(name, value)?),
        "fsname" => {
            let value = needs_value(name, value)?;
            if value.is_empty() {
                return Err(invalid(option, "the name is empty"));
            }
            parsed.fsname = Some(value.to_string());
        }
        "threads" => {
            let value = needs_value(name, value)?;
            let n: usize = value.parse().map_err(|_| invalid(option, "not a number"))?;
            if !(1..=MAX_THREADS).contains(&n) {
                return Err(invalid(
                    option,
                    &format!("the number of threads must be 1 to {MAX_THREADS}"),
                ));
            }
            parsed.threads = Some(n);
        }
        _ => return Err(OptionError::Unknown(option.to_string())),
    }
    Ok(())
}

fn no_value(name: &str, value: Option<&str>) -> Result<(), OptionError> {
    match value {
        None => Ok(()),
        Some(_) => Err(OptionError::UnexpectedValue(name.to_string())),
    }
}

fn needs_value<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, OptionError> {
    value.ok_or_else(|| OptionError::MissingValue(name.to_string()))
}

fn id(name: &str, value: Option<&str>) -> Result<u32, OptionError> {
    let value = needs_value(name, value)?;
    // Only plain decimal: u32's parser would also take "+5".
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(&format!("{name}={value}"), "not a numeric ID"));
    }
    value
        .parse()
        .map_err(|_| invalid(&format!("{name}={value}"), "ID out of range"))
}

/// Largest `max_staged=` and `max_staged_total=` accepted: staged files are held in
/// memory.
const MAX_STAGED_LIMIT: u64 = 1 << 30;

/// Largest `max_staged_files=` accepted: staging is scanned linearly on every change.
const MAX_STAGED_FILES_LIMIT: usize = 65536;

/// A byte count, with an optional K, M or G suffix (powers of 1024).
fn size(option: &str, value: &str) -> Result<u64, OptionError> {
    let (digits, unit) = match value.as_bytes().last() {
        Some(b'k' | b'K') => (&value[..value.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&value[..value.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&value[..value.len() - 1], 1 << 30),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            option,
            "not a size (bytes, or a number with K, M or G)",
        ));
    }
    let n = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| (1..=MAX_STAGED_LIMIT).contains(n))
        .ok_or_else(|| invalid(option, "the size must be 1 byte to 1G"))?;
    Ok(n)
}

fn invalid(option: &str, reason: &str) -> OptionError {
    OptionError::InvalidValue {
        option: option.to_string(),
        reason: reason.to_string(),
    }
}

impl ParsedOptions {
    /// The options the mount is made with. `ro`, `rw` and the `max_staged*` limits are
    /// not among them: they decide how the image is opened (see `main.rs`).
    /// `default_permissions` is always on: the kernel enforces the modes the tree shows
    /// (read-only files 0444, directories 0555, `/cosign` writable by its owner only).
    pub fn into_mount_options(self, defaults: Defaults) -> MountOptions {
        MountOptions {
            uid: self.uid.unwrap_or(defaults.uid),
            gid: self.gid.unwrap_or(defaults.gid),
            allow_other: self.allow_other,
            allow_root: self.allow_root,
            default_permissions: true,
            fsname: self.fsname.unwrap_or(defaults.fsname),
            kernel_options: self.kernel_flags,
            threads: self.threads.unwrap_or(defaults.threads),
        }
    }
}

/// The default number of FUSE worker threads: one per CPU, at least 2 so that one slow
/// read does not stall `ls`, at most 8 because reads are single `pread`s that more threads
/// do not speed up.
pub fn default_threads(cpus: Option<usize>) -> usize {
    cpus.unwrap_or(2).clamp(2, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> ParsedOptions {
        match parse(args) {
            Ok(p) => p,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn err(args: &[&str]) -> OptionError {
        match parse(args) {
            Ok(p) => panic!("{args:?} parsed as {p:?}"),
            Err(e) => e,
        }
    }

    fn defaults() -> Defaults {
        Defaults {
            uid: 1000,
            gid: 100,
            fsname: "/images/a.sif".to_string(),
            threads: 4,
        }
    }

    #[test]
    fn nothing_gives_the_defaults() {
        assert_eq!(ok(&[]), ParsedOptions::default());
        let m = ok(&[]).into_mount_options(defaults());
        assert_eq!(
            m,
            MountOptions {
                uid: 1000,
                gid: 100,
                allow_other: false,
                allow_root: false,
                default_permissions: true,
                fsname: "/images/a.sif".to_string(),
                kernel_options: vec![],
                threads: 4,
            }
        );
    }

    #[test]
    fn every_fuse_option() {
        let p = ok(&[
            "allow_other,uid=0,gid=42",
            "default_permissions,fsname=demo,threads=3",
        ]);
        assert!(p.allow_other && !p.allow_root);
        assert_eq!((p.uid, p.gid), (Some(0), Some(42)));
        assert_eq!(p.fsname.as_deref(), Some("demo"));
        assert_eq!(p.threads, Some(3));
        let m = p.into_mount_options(defaults());
        assert_eq!((m.uid, m.gid, m.threads), (0, 42, 3));
        assert_eq!(m.fsname, "demo");
        assert!(ok(&["allow_root"]).allow_root);
        assert_eq!(ok(&["uid=4294967295"]).uid, Some(u32::MAX));
    }

    #[test]
    fn max_staged_takes_sizes() {
        assert_eq!(ok(&["max_staged=4096"]).max_staged, Some(4096));
        assert_eq!(ok(&["max_staged=64K"]).max_staged, Some(64 << 10));
        assert_eq!(ok(&["max_staged=16m"]).max_staged, Some(16 << 20));
        assert_eq!(ok(&["max_staged=1G"]).max_staged, Some(1 << 30));
        for bad in [
            "max_staged=0",
            "max_staged=2G",
            "max_staged=12X",
            "max_staged=M",
        ] {
            assert!(
                matches!(err(&[bad]), OptionError::InvalidValue { .. }),
                "{bad}"
            );
        }
        assert_eq!(
            err(&["max_staged"]),
            OptionError::MissingValue("max_staged".into())
        );
    }

    #[test]
    fn staging_limits_take_counts_and_sizes_that_fit_together() {
        let p = ok(&["max_staged_files=10,max_staged_total=1M,max_staged=64K"]);
        assert_eq!(p.max_staged_files, Some(10));
        assert_eq!(p.max_staged_total, Some(1 << 20));
        assert_eq!(
            ok(&["max_staged_files=65536"]).max_staged_files,
            Some(65536)
        );
        for bad in [
            "max_staged_files=0",
            "max_staged_files=65537",
            "max_staged_files=x",
            "max_staged_files=-1",
            "max_staged_total=0",
            "max_staged_total=2G",
        ] {
            assert!(
                matches!(err(&[bad]), OptionError::InvalidValue { ref option, .. } if option == bad),
                "{bad}"
            );
        }
        assert_eq!(
            err(&["max_staged_total=1M,max_staged=2M"]),
            OptionError::StagedOverTotal {
                max_staged: 2 << 20,
                total: 1 << 20
            }
        );
    }

    #[test]
    fn default_permissions_is_always_on() {
        assert!(ok(&[]).into_mount_options(defaults()).default_permissions);
        assert!(
            ok(&["default_permissions"])
                .into_mount_options(defaults())
                .default_permissions
        );
        assert_eq!(ok(&["default_permissions"]), ParsedOptions::default());
    }

    #[test]
    fn later_values_win() {
        let p = ok(&["uid=1,threads=2", "uid=2", "threads=5,fsname=a,fsname=b"]);
        assert_eq!(p.uid, Some(2));
        assert_eq!(p.threads, Some(5));
        assert_eq!(p.fsname.as_deref(), Some("b"));
    }

    #[test]
    fn kernel_flags_pass_through_and_the_last_of_a_pair_wins() {
        let p = ok(&["nosuid,nodev,noexec,noatime,sync,dirsync"]);
        assert_eq!(
            p.kernel_flags,
            ["nosuid", "nodev", "noexec", "noatime", "sync", "dirsync"]
        );
        // What mount.fuse3 makes of `mount -o user,exec`: its own dev,suid come last.
        let p = ok(&["rw,noexec,nosuid,nodev,exec,dev,suid"]);
        assert_eq!(p.kernel_flags, ["exec", "dev", "suid"]);
        let p = ok(&["atime,async,noatime,atime,atime"]);
        assert_eq!(p.kernel_flags, ["async", "atime"]);
        let m = ok(&["noexec,nosuid"]).into_mount_options(defaults());
        assert_eq!(m.kernel_options, ["noexec", "nosuid"]);
    }

    #[test]
    fn content_trust_options_are_flags_that_stay_out_of_the_kernel_list() {
        let p = ok(&["require_signed,verify_drops"]);
        assert!(p.require_signed && p.verify_drops);
        let p = ok(&[]);
        assert!(!p.require_signed && !p.verify_drops);
        let m = ok(&["require_signed", "verify_drops"]).into_mount_options(defaults());
        assert!(m.kernel_options.is_empty(), "{:?}", m.kernel_options);
        for bad in ["require_signed=1", "verify_drops=yes"] {
            assert!(parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_last_of_ro_and_rw_wins_and_neither_reaches_the_kernel_list() {
        assert!(ok(&["ro"]).read_only);
        assert!(!ok(&["rw"]).read_only);
        assert!(!ok(&[]).read_only);
        assert!(ok(&["rw,ro"]).read_only);
        assert!(!ok(&["ro", "rw"]).read_only);
        // Only an explicit rw insists on writing.
        assert!(ok(&["rw"]).read_write);
        assert!(ok(&["ro", "rw"]).read_write);
        assert!(!ok(&["rw,ro"]).read_write);
        assert!(!ok(&[]).read_write);
        // Neither reaches the kernel options: the adapter always mounts read-only.
        for args in [&["rw"][..], &["ro"], &["rw,dev,suid"]] {
            let m = ok(args).into_mount_options(defaults());
            assert!(
                !m.kernel_options.iter().any(|o| o == "rw" || o == "ro"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn what_mount_and_fstab_hand_on_is_ignored() {
        let p = ok(&[
            "defaults,auto,noauto,user,nouser,users,owner,group,_netdev,nofail",
            "x-systemd.automount,x-systemd.idle-timeout=60,x-gvfs-show,comment=systemd.automount",
        ]);
        assert_eq!(p, ParsedOptions::default());
    }

    #[test]
    fn empty_items_and_escaped_commas() {
        assert_eq!(ok(&["", ",ro,,nosuid,"]).kernel_flags, ["nosuid"]);
        assert_eq!(
            ok(&[r"fsname=a\,b\\c,nodev"]).fsname.as_deref(),
            Some(r"a,b\c")
        );
        assert_eq!(
            ok(&[r"fsname=trailing\"]).fsname.as_deref(),
            Some(r"trailing\")
        );
        assert_eq!(split(r"a\,b,c"), ["a,b", "c"]);
    }

    #[test]
    fn unknown_options_are_named() {
        assert_eq!(
            err(&["ro,bogus,nosuid"]),
            OptionError::Unknown("bogus".into())
        );
        assert_eq!(
            err(&["ro", "max_read=4096"]),
            OptionError::Unknown("max_read=4096".into())
        );
        assert_eq!(
            err(&["auto_unmount"]),
            OptionError::Unknown("auto_unmount".into())
        );
        // Case matters, as in mount(8).
        assert_eq!(err(&["RO"]), OptionError::Unknown("RO".into()));
        let message = err(&["nosiud"]).to_string();
        assert!(message.contains("'nosiud'"), "{message}");
    }

    #[test]
    fn nonempty_is_a_flag_that_stays_out_of_the_kernel_list() {
        assert!(!ok(&[]).nonempty);
        let p = ok(&["ro,nonempty"]);
        assert!(p.nonempty);
        assert!(p.into_mount_options(defaults()).kernel_options.is_empty());
        assert_eq!(
            err(&["nonempty=1"]),
            OptionError::UnexpectedValue("nonempty".into())
        );
    }

    #[test]
    fn allow_other_and_allow_root_exclude_each_other() {
        assert_eq!(
            err(&["allow_other,allow_root"]),
            OptionError::AllowOtherAndAllowRoot
        );
        assert_eq!(
            err(&["allow_root", "allow_other"]),
            OptionError::AllowOtherAndAllowRoot
        );
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(err(&["uid"]), OptionError::MissingValue("uid".into()));
        assert_eq!(
            err(&["threads"]),
            OptionError::MissingValue("threads".into())
        );
        assert_eq!(err(&["fsname"]), OptionError::MissingValue("fsname".into()));
        assert_eq!(err(&["ro=1"]), OptionError::UnexpectedValue("ro".into()));
        assert_eq!(
            err(&["nosuid=yes"]),
            OptionError::UnexpectedValue("nosuid".into())
        );
        assert_eq!(
            err(&["allow_other="]),
            OptionError::UnexpectedValue("allow_other".into())
        );
        for bad in [
            "uid=",
            "uid=-1",
            "uid=+5",
            "uid=abc",
            "uid=4294967296",
            "gid=1.5",
        ] {
            assert!(
                matches!(err(&[bad]), OptionError::InvalidValue { ref option, .. } if option == bad),
                "{bad}"
            );
        }
        for bad in ["threads=0", "threads=257", "threads=x", "fsname="] {
            assert!(
                matches!(err(&[bad]), OptionError::InvalidValue { ref option, .. } if option == bad),
                "{bad}"
            );
        }
        assert_eq!(ok(&["threads=256"]).threads, Some(256));
    }

    #[test]
    fn default_threads_follow_the_cpus_within_bounds() {
        assert_eq!(default_threads(None), 2);
        assert_eq!(default_threads(Some(1)), 2);
        assert_eq!(default_threads(Some(6)), 6);
        assert_eq!(default_threads(Some(64)), 8);
    }
}
