//! The command line around a real mount: daemonizing, -u, signals, stale and busy mount
//! points, and running as mount.fuse3's helper. Needs /dev/fuse (and, for the helper test,
//! mount.fuse3 from the fuse3 package); .ci/run provides both. What the mount shows is
//! tested elsewhere; here only what the command line promises.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;

const IMAGE: &str = "generated/hello-world-cosign-manifest.oci.sif";
const OCI_LAYOUT: &str = "{\"imageLayoutVersion\": \"1.0.0\"}";
const LIMIT: Duration = Duration::from_secs(20);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sifmount")
}

#[track_caller]
fn need_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: these tests mount for real (load the fuse module, or give the \
         container the device)"
    );
}

/// A temporary mount point that is unmounted (lazily, so that it cannot fail on a busy
/// mount) however the test ends.
struct MountPoint {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl MountPoint {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        MountPoint { _dir: dir, path }
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        let c = CString::new(self.path.as_os_str().as_bytes()).unwrap();
        while is_mounted(&self.path) {
            // SAFETY: c is a valid C string for the duration of the call.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                break;
            }
        }
    }
}

/// Whether `path` is a mount point, from /proc/self/mountinfo (field 5; these paths have no
/// characters the kernel escapes).
fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

/// The mount is in the table as soon as mount(2) returns, before the FUSE handshake; a
/// lookup waits for the handshake, so after this the mount is in service. (A lookup, not
/// a listing: the release of a closed directory reaches the file system asynchronously
/// and keeps the mount busy for a moment.)
#[track_caller]
fn wait_until_served(mountpoint: &Path) {
    wait_for("the mount", || is_mounted(mountpoint));
    let layout = std::fs::metadata(mountpoint.join("oci-layout")).unwrap();
    assert_eq!(layout.len(), OCI_LAYOUT.len() as u64);
}

#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs to completion with stdout and stderr in files, failing after LIMIT: a daemon that
/// kept the caller's pipes open would otherwise hang the test rather than fail it.
fn run(args: &[&OsStr]) -> Output {
    run_env(args, &[])
}

fn run_env(args: &[&OsStr], env: &[(&str, &OsStr)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut command = Command::new(args[0]);
    command
        .args(&args[1..])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let status = wait_bounded(&mut child, &format!("{args:?}"));
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

#[track_caller]
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    wait_bounded_logged(child, what, None)
}

/// As wait_bounded; on a timeout the panic shows the child's stderr from `log`.
#[track_caller]
fn wait_bounded_logged(child: &mut Child, what: &str, log: Option<&Path>) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            let log = log
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .unwrap_or_default();
            panic!("{what} still running after {LIMIT:?}; its stderr:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// The processes whose command line is sifmount with `mountpoint` as an argument.
fn daemons(mountpoint: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_sifmount = args.first().is_some_and(|a| {
            Path::new(OsStr::from_bytes(a)).file_name() == Some(OsStr::new("sifmount"))
        });
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit(") ")
            .next()
            .is_some_and(|s| s.starts_with('Z'));
        if is_sifmount && !zombie && args.iter().any(|a| *a == mountpoint.as_os_str().as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn without_f_it_returns_once_the_mount_is_ready_and_u_ends_the_daemon() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
    assert_ok(&o);
    assert!(
        o.stderr.is_empty() && o.stdout.is_empty(),
        "{}",
        text(&o.stderr)
    );
    // Ready on return: no waiting, no retry.
    assert_eq!(
        std::fs::read_to_string(mp.path.join("oci-layout")).unwrap(),
        OCI_LAYOUT
    );
    assert!(is_mounted(&mp.path));
    let pids = daemons(&mp.path);
    assert_eq!(pids.len(), 1, "one daemon: {pids:?}");
    // A daemon: its own session, stdio on /dev/null, working directory /.
    let pid = pids[0];
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "session id is its pid: {stat}");
    for fd in 0..=2 {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(),
            Path::new("/dev/null")
        );
    }
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );

    // Mounting again on the same directory is refused, naming the mount.
    let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("mountpoint is busy"), "{err}");
    assert!(
        err.contains(&format!("sifmount -u {}", mp.path.display())),
        "{err}"
    );

    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_ok(&o);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    assert!(!is_mounted(&mp.path));
    wait_for("the daemon to exit", || daemons(&mp.path).is_empty());
}

#[test]
fn in_the_foreground_sigint_sigterm_and_sighup_unmount_cleanly() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let mp = MountPoint::new();
        let dir = tempfile::tempdir().unwrap();
        let err_path = dir.path().join("err");
        let mut child = Command::new(bin())
            .args(["-f".as_ref(), image.as_os_str(), mp.path.as_os_str()])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        wait_until_served(&mp.path);
        assert_eq!(
            std::fs::read_to_string(mp.path.join("oci-layout")).unwrap(),
            OCI_LAYOUT
        );
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = wait_bounded_logged(
            &mut child,
            &format!("sifmount -f after signal {signal}"),
            Some(&err_path),
        );
        let err = std::fs::read_to_string(&err_path).unwrap();
        assert_eq!(status.code(), Some(0), "signal {signal}: {err}");
        assert!(!is_mounted(&mp.path), "signal {signal} left the mount");
        assert!(
            err.contains(&format!(
                "mounted {} at {}",
                image.display(),
                mp.path.display()
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("unmounted {}", mp.path.display())),
            "{err}"
        );
    }
}

#[test]
fn unmounting_from_outside_ends_the_foreground_process_with_status_0() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(bin())
        .args(["-f".as_ref(), image.as_os_str(), mp.path.as_os_str()])
        .env("RUST_LOG", "warn,sifmount=debug")
        .stdin(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    wait_until_served(&mp.path);
    // What umount(8) does as root, and fusermount3 -u for a user.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let c = CString::new(mp.path.as_os_str().as_bytes()).unwrap();
        // SAFETY: c is a valid C string for the duration of the call.
        let rc = unsafe { libc::umount2(c.as_ptr(), 0) };
        assert_eq!(rc, 0, "umount: {}", std::io::Error::last_os_error());
    } else {
        let o = run(&["fusermount3".as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
        assert_ok(&o);
    }
    let status = wait_bounded_logged(&mut child, "sifmount -f after umount", Some(log.path()));
    let log = std::fs::read_to_string(log.path()).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn a_stale_mount_is_named_and_u_clears_it() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    let mut child = Command::new(bin())
        .args(["-f".as_ref(), image.as_os_str(), mp.path.as_os_str()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_served(&mp.path);
    child.kill().unwrap();
    child.wait().unwrap();
    // A listing must ask the dead process (stat may be answered from the kernel's cache).
    let e = std::fs::read_dir(&mp.path).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN), "stale: {e}");

    let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "sifmount: {0}: stale FUSE mount at {0} (its file system process has gone); \
             clear it with: sifmount -u {0}",
            mp.path.display()
        )
    );

    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_ok(&o);
    assert!(!is_mounted(&mp.path));
    assert!(std::fs::metadata(&mp.path).unwrap().is_dir());
}

#[test]
fn mount_fuse3_runs_it_as_a_mount_helper() {
    need_fuse();
    let helper = ["/usr/sbin/mount.fuse3", "/sbin/mount.fuse3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mount.fuse3 not found: install the fuse3 package");
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    // What `mount -t fuse.sifmount IMAGE MP -o noexec` runs; mount.fuse3 finds sifmount
    // in PATH and calls it as `sifmount IMAGE MP -o rw,noexec,dev,suid`-like.
    let bin_dir = Path::new(bin()).parent().unwrap();
    let mut path = bin_dir.as_os_str().to_os_string();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let o = run_env(
        &[
            helper.as_ref(),
            image.as_os_str(),
            mp.path.as_os_str(),
            "-t".as_ref(),
            "sifmount".as_ref(),
            "-o".as_ref(),
            "ro,noexec,nofail".as_ref(),
        ],
        &[("PATH", &path)],
    );
    assert_ok(&o);
    assert_eq!(
        std::fs::read_to_string(mp.path.join("oci-layout")).unwrap(),
        OCI_LAYOUT
    );
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == mp.path.to_str())
        .expect("mounted");
    let flags = line.split(' ').nth(5).unwrap();
    assert!(flags.split(',').any(|f| f == "noexec"), "{line}");
    assert!(flags.split(',').any(|f| f == "ro"), "{line}");

    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_ok(&o);
    wait_for("the daemon to exit", || daemons(&mp.path).is_empty());
}

#[test]
fn a_signal_while_the_mount_is_busy_detaches_it_and_the_process_ends_with_its_last_user() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    let mut child = Command::new(bin())
        .args(["-f".as_ref(), image.as_os_str(), mp.path.as_os_str()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_served(&mp.path);
    // A user whose working directory is in the mount keeps it busy until it exits.
    let mut user = Command::new("sh")
        .args(["-c", "read line"])
        .current_dir(mp.path.join("images"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    wait_for("the mount to leave the namespace", || !is_mounted(&mp.path));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "sifmount must keep serving its last user"
    );
    drop(user.stdin.take());
    wait_bounded(&mut user, "the user");
    let status = wait_bounded(&mut child, "sifmount -f after its last user left");
    assert_eq!(status.code(), Some(0));
}

/// The daemon's lines reach syslog(3). The test owns the "syslog daemon": a datagram
/// socket bound in a temporary directory, which a private mount namespace (unshare -m)
/// shows as /dev/log to sifmount alone (over a /dev of its own holding just the devices it
/// needs), so the machine's real /dev and log are untouched. A refused drop must arrive
/// as one datagram: facility daemon, priority warning, ident sifmount with its pid.
#[test]
fn a_daemon_logs_to_syslog_with_its_ident_and_priority() {
    need_fuse();
    common::need_root("it makes a private mount namespace (unshare -m) to put its own /dev/log");
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().canonicalize().unwrap();
    let socket_path = t.join("log.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let image = common::writable_copy(&t, "generated/squashfs-image.oci.sif");
    let mp = t.join("mnt");
    std::fs::create_dir(&mp).unwrap();
    let script = r#"
        set -u
        mkdir "$T/dev"
        mount --bind /dev "$T/dev" || exit 10
        mount -t tmpfs -o mode=755 tmpfs /dev || exit 11
        for n in null zero full random urandom fuse; do
            touch "/dev/$n" && mount --bind "$T/dev/$n" "/dev/$n" || exit 12
        done
        touch /dev/log && mount --bind "$T/log.sock" /dev/log || exit 13
        "$BIN" "$IMAGE" "$MP" || exit 14
        # Not JSON: refused at close(2) with EINVAL, and logged.
        printf 'not a payload' > "$T/refused"
        if cp "$T/refused" "$MP/cosign/refused" 2>/dev/null; then echo "accepted"; exit 15; fi
        "$BIN" -u "$MP" || exit 16
    "#;
    let o = run_env(
        &[
            "unshare".as_ref(),
            "-m".as_ref(),
            "--propagation".as_ref(),
            "private".as_ref(),
            "sh".as_ref(),
            "-c".as_ref(),
            script.as_ref(),
        ],
        &[
            ("T", t.as_os_str()),
            ("BIN", bin().as_ref()),
            ("IMAGE", image.as_os_str()),
            ("MP", mp.as_os_str()),
        ],
    );
    assert_ok(&o);
    let mut lines = Vec::new();
    let mut buf = [0u8; 8192];
    let start = Instant::now();
    let wanted = |lines: &[String]| lines.iter().any(|l| l.contains("cosign/refused: payload"));
    while !wanted(&lines) && start.elapsed() < LIMIT {
        if let Ok(n) = socket.recv(&mut buf) {
            lines.push(text(&buf[..n]));
        }
    }
    let line = lines
        .iter()
        .find(|l| l.contains("cosign/refused: payload"))
        .unwrap_or_else(|| panic!("no refusal reached syslog; it got: {lines:#?}"));
    // <facility * 8 + priority>: LOG_DAEMON (3) and LOG_WARNING (4).
    assert!(line.starts_with("<28>"), "{line}");
    let ident = line
        .split_once("sifmount[")
        .and_then(|(_, rest)| rest.split_once("]: "))
        .unwrap_or_else(|| panic!("no ident sifmount[pid]: in {line}"));
    assert!(ident.0.parse::<u32>().is_ok(), "{line}");
    assert!(ident.1.contains("not valid JSON"), "{line}");
    // Its stderr is /dev/null once detached: nothing reached the caller either.
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn a_daemon_unmounts_cleanly_on_sigint_sigterm_and_sighup() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let mp = MountPoint::new();
        let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
        assert_ok(&o);
        let pids = daemons(&mp.path);
        assert_eq!(pids.len(), 1, "one daemon: {pids:?}");
        // SAFETY: kill has no memory-safety preconditions; the pid is the daemon's.
        assert_eq!(unsafe { libc::kill(pids[0] as i32, signal) }, 0);
        wait_for(&format!("the daemon to exit after signal {signal}"), || {
            daemons(&mp.path).is_empty()
        });
        assert!(!is_mounted(&mp.path), "signal {signal} left the mount");
        // Not stale: the directory is the plain, empty one again.
        let listing: Vec<_> = std::fs::read_dir(&mp.path).unwrap().collect();
        assert!(listing.is_empty(), "signal {signal}: {listing:?}");
    }
}

#[test]
fn u_on_a_busy_mount_says_who_keeps_it_busy_and_leaves_it_mounted() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
    assert_ok(&o);
    let mut user = Command::new("sh")
        .args(["-c", "read line"])
        .current_dir(mp.path.join("images"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr).trim_end(),
        format!(
            "sifmount: {0}: busy: a process has a file open or its working directory in it \
             (fuser -vm {0} lists them); nothing was unmounted",
            mp.path.display()
        )
    );
    assert!(is_mounted(&mp.path));
    assert_eq!(
        std::fs::read_to_string(mp.path.join("oci-layout")).unwrap(),
        OCI_LAYOUT,
        "still served"
    );
    drop(user.stdin.take());
    wait_bounded(&mut user, "the user");
    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_ok(&o);
    wait_for("the daemon to exit", || daemons(&mp.path).is_empty());
}

#[test]
fn mounting_over_a_mount_of_something_else_is_refused_as_busy() {
    need_fuse();
    common::need_root("it mounts a tmpfs to have a non-FUSE mount point");
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    let o = run(&[
        "mount".as_ref(),
        "-t".as_ref(),
        "tmpfs".as_ref(),
        "sifmount-test".as_ref(),
        mp.path.as_os_str(),
    ]);
    assert_ok(&o);
    let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim_end(),
        format!(
            "sifmount: {0}: mountpoint is busy: {0} is already a mount point (tmpfs from \
             sifmount-test); choose another directory",
            mp.path.display()
        )
    );
    // -u does not take it away either: it is not FUSE.
    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not a FUSE mount but tmpfs"),
        "{}",
        text(&o.stderr)
    );
    assert!(is_mounted(&mp.path));
}

#[test]
fn rw_on_an_image_that_cannot_be_written_is_refused_on_the_terminal() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    // Without -f: the refusal comes before the daemon, on the caller's standard error.
    let o = run(&[
        bin().as_ref(),
        "-o".as_ref(),
        "rw".as_ref(),
        image.as_os_str(),
        mp.path.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!(
            "sifmount: {}: -o rw, but the image cannot be written (not writable); mount it \
             with -o ro, or without rw\n",
            image.display()
        )
    );
    assert!(!is_mounted(&mp.path));
    assert!(daemons(&mp.path).is_empty());
    // Without rw it mounts, read-only.
    let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
    assert_ok(&o);
    wait_until_served(&mp.path);
    assert_eq!(
        std::fs::write(mp.path.join("cosign").join("x"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS)
    );
    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_ok(&o);
}

#[test]
fn a_mountpoint_with_files_is_refused_unless_nonempty() {
    need_fuse();
    let (_copy, image) = read_only_copy();
    let mp = MountPoint::new();
    std::fs::write(mp.path.join("mine"), b"kept").unwrap();
    let o = run(&[bin().as_ref(), image.as_os_str(), mp.path.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!(
            "sifmount: {}: mountpoint is not empty: the mount would hide its files; give -o \
             nonempty if that is what you want\n",
            mp.path.display()
        )
    );
    assert!(!is_mounted(&mp.path));
    assert_eq!(std::fs::read(mp.path.join("mine")).unwrap(), b"kept");

    let o = run(&[
        bin().as_ref(),
        "-o".as_ref(),
        "nonempty".as_ref(),
        image.as_os_str(),
        mp.path.as_os_str(),
    ]);
    assert_ok(&o);
    wait_until_served(&mp.path);
    assert!(!mp.path.join("mine").exists(), "hidden under the mount");
    let o = run(&[bin().as_ref(), "-u".as_ref(), mp.path.as_os_str()]);
    assert_ok(&o);
    wait_for("the daemon to exit", || daemons(&mp.path).is_empty());
    assert_eq!(std::fs::read(mp.path.join("mine")).unwrap(), b"kept");
}

/// The test image copied to a file of its own without write permission: what the tests
/// here mount, so that the shared test data is never mounted (and never written), and the
/// image is read-only whether or not the shared copy is writable.
fn read_only_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.oci.sif");
    std::fs::copy(common::upstream(IMAGE), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    (dir, path)
}
