//! Mounting images with the real `sifmount` binary for the real-mount tests.
//!
//! Every wait has a deadline and says what it waited for; every mount is unmounted by a
//! guard ([`Mount`]'s `Drop`), so a failing test never leaves a stale mount behind; a
//! watchdog kills a daemon that stays mounted far longer than its test should take, which
//! turns a hung FUSE request into an error (ENOTCONN) instead of a hung test.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long `sifmount IMAGE MP` may take to return, and `sifmount -f` to mount.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an unmounted daemon may take to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a mount may stay in use before the watchdog kills its daemon.
pub const WATCHDOG: Duration = Duration::from_secs(600);

/// The binary under test.
pub fn sifmount_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sifmount"))
}

/// Fails the test, saying why, when FUSE cannot be used here.
pub fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the real-mount tests need FUSE (load the fuse module, or run \
         the container with --device /dev/fuse); they do not skip"
    );
    require_tool("fusermount3", "fuse3");
}

/// Fails the test, saying how to install it, when `tool` is not on PATH.
pub fn require_tool(tool: &str, package: &str) {
    match Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "{tool} is needed by this test but cannot be run ({e}): install it \
             (`apt-get install {package}`; .ci/run does this)"
        ),
    }
}

pub use sifmount::mountinfo::MountEntry;

/// Every mount of this process's mount namespace.
pub fn mounts() -> Vec<MountEntry> {
    sifmount::mountinfo::read().unwrap_or_else(|e| panic!("{e}"))
}

/// The mount at `mp` (the last one, when several are stacked), if any.
pub fn mount_at(mp: &Path) -> Option<MountEntry> {
    mounts().into_iter().rev().find(|m| m.mount_point == mp)
}

pub fn is_mounted(mp: &Path) -> bool {
    mount_at(mp).is_some()
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for `child` to exit, at most `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

fn read_back(mut f: File) -> String {
    let mut s = String::new();
    f.rewind().expect("rewind a temporary file");
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).expect("read a temporary file");
    s.push_str(&String::from_utf8_lossy(&bytes));
    s
}

/// Runs `cmd` with output captured in (anonymous) temporary files rather than pipes, so a
/// daemon that keeps the inherited descriptors open cannot make this wait forever; kills
/// it and fails the test when it runs longer than `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let out = tempfile::tempfile().expect("create a temporary file");
    let err = tempfile::tempfile().expect("create a temporary file");
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup a temporary file"))
        .stderr(err.try_clone().expect("dup a temporary file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let Some(status) = wait_child(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{shown} did not finish within {timeout:?}; killed it. stderr: {}",
            read_back(err)
        );
    };
    Output {
        status,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

/// How long a tool run against a mount (`cp`, `rm`, `base64`…) may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `program ARGS…` as [`run`] does, within [`TOOL_TIMEOUT`], failing the test,
/// saying how to install it, when the tool is missing.
pub fn run_tool(program: &str, package: &str, args: &[&dyn AsRef<OsStr>]) -> Output {
    require_tool(program, package);
    let mut cmd = Command::new(program);
    for a in args {
        cmd.arg(a);
    }
    run(&mut cmd, TOOL_TIMEOUT)
}

/// `cp ARGS…` ([`run_tool`]): exit status 1 when any open, write or close(2) fails.
pub fn cp(args: &[&dyn AsRef<OsStr>]) -> Output {
    run_tool("cp", "coreutils", args)
}

/// The processes running the sifmount binary with `mp` among their arguments: the
/// daemon (and, briefly, the parent that started it).
pub fn sifmount_pids(mp: &Path) -> Vec<i32> {
    let bin = sifmount_bin();
    let bin_name = bin.file_name().expect("binary has a name").to_owned();
    let mp = mp.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_sifmount = args
            .first()
            .map(|a0| Path::new(OsStr::from_bytes(a0)).file_name())
            .is_some_and(|n| n == Some(bin_name.as_os_str()));
        if is_sifmount && args.iter().skip(1).any(|a| *a == mp) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether process `pid` still exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

pub fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid this test started; no memory is shared.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// How the image was mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `sifmount IMAGE MP`: returns once the mount is ready; the daemon runs on.
    Daemon,
    /// `sifmount -f IMAGE MP` as a child of the test.
    Foreground,
}

/// A mounted image. Dropping it unmounts (fusermount3 -u, else umount -l), waits for the
/// daemon to exit (killing it if it does not) and removes the temporary mountpoint.
pub struct Mount {
    /// The canonical mountpoint path, as /proc/self/mountinfo shows it.
    pub mountpoint: PathBuf,
    pub image: PathBuf,
    pub mode: Mode,
    /// How long `sifmount IMAGE MP` took to return (daemon mode), or until the mount
    /// appeared (foreground).
    pub mount_time: Duration,
    child: Option<Child>,
    /// The daemon's pid (daemon mode), found by its command line.
    daemon_pid: Option<i32>,
    log: PathBuf,
    watchdog: Option<(mpsc::Sender<()>, thread::JoinHandle<()>)>,
    dir: Option<tempfile::TempDir>,
}

impl Mount {
    /// Mounts `image` with `sifmount IMAGE MP` plus `extra` arguments.
    pub fn daemon(image: &Path) -> Mount {
        Mount::new(image, Mode::Daemon, &[])
    }

    /// Mounts `image` with `sifmount -f IMAGE MP`, a child of the test.
    pub fn foreground(image: &Path) -> Mount {
        Mount::new(image, Mode::Foreground, &[])
    }

    pub fn new(image: &Path, mode: Mode, extra: &[&str]) -> Mount {
        Mount::with_env(image, mode, extra, &[])
    }

    /// As [`Mount::new`], with these variables in sifmount's environment (a key's
    /// `COSIGN_PASSWORD`: setting it in the test process would race with other tests).
    pub fn with_env(image: &Path, mode: Mode, extra: &[&str], env: &[(&str, &str)]) -> Mount {
        require_fuse();
        let dir = tempfile::Builder::new()
            .prefix("sifmount-test-")
            .tempdir()
            .expect("create a temporary directory");
        let mp = dir.path().join("mnt");
        std::fs::create_dir(&mp).expect("create the mountpoint");
        let mp = mp.canonicalize().expect("canonicalize the mountpoint");
        let log = dir.path().join("sifmount.log");
        let log_file = File::create(&log).expect("create the log file");
        let mut cmd = Command::new(sifmount_bin());
        if mode == Mode::Foreground {
            cmd.arg("-f");
        }
        cmd.args(extra);
        cmd.envs(env.iter().copied());
        if is_shared_fixture(image) {
            // Tests never write the shared test data (parallel tests would contend for the
            // writer's lock, and one could change a fixture): read-only unless asked.
            let asked = |mode: &str| {
                extra
                    .windows(2)
                    .any(|w| w[0] == "-o" && w[1].split(',').any(|o| o == mode))
            };
            assert!(
                !asked("rw"),
                "{}: a shared fixture is never mounted read-write; copy it",
                image.display()
            );
            if !asked("ro") {
                cmd.args(["-o", "ro"]);
            }
        }
        cmd.arg(image).arg(&mp);
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup the log file"))
            .stderr(log_file);
        let shown = format!("{cmd:?}");
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
        let mut m = Mount {
            mountpoint: mp.clone(),
            image: image.to_path_buf(),
            mode,
            mount_time: Duration::ZERO,
            child: None,
            daemon_pid: None,
            log,
            watchdog: None,
            dir: Some(dir),
        };
        match mode {
            Mode::Daemon => {
                let status = wait_child(&mut child, MOUNT_TIMEOUT);
                m.mount_time = start.elapsed();
                let Some(status) = status else {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{shown} did not return within {MOUNT_TIMEOUT:?} (killed it); log: {}",
                        m.log_text()
                    );
                };
                assert!(
                    status.success(),
                    "{shown} failed with {status}; log: {}",
                    m.log_text()
                );
                // It returns only once the mount is ready: no polling here.
                assert!(
                    is_mounted(&mp),
                    "{shown} returned success but {} is not in /proc/self/mountinfo yet; \
                     log: {}",
                    mp.display(),
                    m.log_text()
                );
                let pids = sifmount_pids(&mp);
                assert!(
                    pids.len() == 1,
                    "expected one sifmount daemon serving {} after {shown} returned, found \
                     pids {pids:?}",
                    mp.display()
                );
                m.daemon_pid = Some(pids[0]);
            }
            Mode::Foreground => {
                let mut exited = None;
                let mounted = wait_until(MOUNT_TIMEOUT, || {
                    if is_mounted(&mp) {
                        return true;
                    }
                    exited = child.try_wait().ok().flatten();
                    exited.is_some()
                });
                m.mount_time = start.elapsed();
                if let Some(status) = exited {
                    panic!(
                        "{shown} exited with {status} before {} appeared in \
                         /proc/self/mountinfo; log: {}",
                        mp.display(),
                        m.log_text()
                    );
                }
                m.child = Some(child);
                assert!(
                    mounted,
                    "{shown}: {} did not appear in /proc/self/mountinfo within \
                     {MOUNT_TIMEOUT:?}; log: {}",
                    mp.display(),
                    m.log_text()
                );
            }
        }
        m.start_watchdog(WATCHDOG);
        m
    }

    /// Kills the daemon when the mount is still in use after `limit`: blocked requests
    /// then fail with ENOTCONN and the test fails instead of hanging.
    fn start_watchdog(&mut self, limit: Duration) {
        let pid = self.pid();
        let (tx, rx) = mpsc::channel::<()>();
        let mp = self.mountpoint.clone();
        let handle = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "watchdog: {} still mounted after {limit:?}: killing sifmount (pid {pid}) \
                     so that the test fails instead of hanging",
                    mp.display()
                );
                // SAFETY: kill(2) of the daemon this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        self.watchdog = Some((tx, handle));
    }

    fn stop_watchdog(&mut self) {
        if let Some((tx, handle)) = self.watchdog.take() {
            let _ = tx.send(());
            let _ = handle.join();
        }
    }

    /// The pid of the process serving the mount.
    pub fn pid(&self) -> i32 {
        match (&self.child, self.daemon_pid) {
            (Some(c), _) => c.id() as i32,
            (None, Some(pid)) => pid,
            (None, None) => panic!("no sifmount process for {}", self.mountpoint.display()),
        }
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel.trim_start_matches('/'))
    }

    /// What sifmount printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The foreground child, for tests that signal it or wait for it.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("a foreground mount has a child")
    }

    /// Waits until the mountpoint has left /proc/self/mountinfo and the process serving it
    /// has exited; returns the foreground child's exit status. Fails the test, saying what
    /// it waited for, when that takes longer than [`EXIT_TIMEOUT`].
    pub fn wait_gone(&mut self) -> Option<ExitStatus> {
        let mp = self.mountpoint.clone();
        assert!(
            wait_until(EXIT_TIMEOUT, || !is_mounted(&mp)),
            "{} is still in /proc/self/mountinfo {EXIT_TIMEOUT:?} after the unmount; log: {}",
            mp.display(),
            self.log_text()
        );
        let status = match self.child.as_mut() {
            Some(child) => {
                let status = wait_child(child, EXIT_TIMEOUT);
                assert!(
                    status.is_some(),
                    "sifmount -f (pid {}) did not exit within {EXIT_TIMEOUT:?} after {} was \
                     unmounted; log: {}",
                    child.id(),
                    mp.display(),
                    self.log_text()
                );
                self.child = None;
                status
            }
            None => {
                let pid = self.daemon_pid.expect("a daemon mount has a pid");
                assert!(
                    wait_until(EXIT_TIMEOUT, || !process_alive(pid)),
                    "the sifmount daemon (pid {pid}) is still running {EXIT_TIMEOUT:?} after \
                     {} was unmounted; log: {}",
                    mp.display(),
                    self.log_text()
                );
                self.daemon_pid = None;
                None
            }
        };
        self.stop_watchdog();
        status
    }

    /// Unmounts with `fusermount3 -u`, then waits as [`Mount::wait_gone`] does.
    pub fn unmount(mut self) -> Option<ExitStatus> {
        // The mount can be busy for a moment after the test closed its last file: the
        // kernel finishes FUSE's RELEASE asynchronously, and a process another test thread
        // is starting holds copies of this process's descriptors until it calls exec.
        // Retry briefly; a mount really in use stays busy and fails the test.
        let deadline = Instant::now() + Duration::from_secs(3);
        let out = loop {
            let out = run(
                Command::new("fusermount3").arg("-u").arg(&self.mountpoint),
                EXIT_TIMEOUT,
            );
            if out.success() || !out.stderr.contains("busy") || Instant::now() >= deadline {
                break out;
            }
            thread::sleep(Duration::from_millis(20));
        };
        assert!(
            out.success(),
            "fusermount3 -u {} failed ({}): {}",
            self.mountpoint.display(),
            out.status,
            out.stderr
        );
        self.wait_gone()
    }

    /// Best-effort cleanup for `Drop`: never panics.
    fn cleanup(&mut self) {
        let mp = self.mountpoint.clone();
        if is_mounted(&mp) {
            let quiet = |cmd: &mut Command| {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                cmd.spawn().ok().and_then(|mut c| {
                    wait_child(&mut c, EXIT_TIMEOUT).or_else(|| {
                        let _ = c.kill();
                        c.wait().ok()
                    })
                })
            };
            quiet(Command::new("fusermount3").arg("-u").arg(&mp));
            if is_mounted(&mp) {
                quiet(Command::new("fusermount3").arg("-uz").arg(&mp));
            }
            if is_mounted(&mp) {
                quiet(Command::new("umount").arg("-l").arg(&mp));
            }
            if is_mounted(&mp) {
                eprintln!("cleanup: could not unmount {}", mp.display());
            }
        }
        if let Some(mut child) = self.child.take() {
            if wait_child(&mut child, EXIT_TIMEOUT).is_none() {
                eprintln!(
                    "cleanup: sifmount -f (pid {}) still running after unmount; killing it",
                    child.id()
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(pid) = self.daemon_pid.take() {
            if !wait_until(EXIT_TIMEOUT, || !process_alive(pid)) {
                eprintln!("cleanup: sifmount daemon (pid {pid}) still running; killing it");
                // SAFETY: kill(2) of the daemon this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        self.stop_watchdog();
        if is_mounted(&mp) {
            // Never recurse into a mount that is still there.
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The device number a path lives on.
pub fn dev_of(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .dev()
}

/// Writes `bytes` to a new file (truncating one that exists) and closes it, returning what
/// close(2) said: through a mount, the close of a drop's last file is when it commits.
pub fn write_close(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_and_close(File::create(path)?, bytes)
}

/// [`write_close`] to a file that must not exist yet (`O_EXCL`).
pub fn write_close_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    write_and_close(f, bytes)
}

/// Writes `bytes` in one write(2) and closes `f` with close(2) itself: std's drop
/// ignores close's error.
fn write_and_close(mut f: File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::io::IntoRawFd;
    f.write_all(bytes)?;
    let fd = f.into_raw_fd();
    // SAFETY: closing the descriptor we own (into_raw_fd gave up the File's ownership).
    if unsafe { libc::close(fd) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `image` lies in the shared test data (`SIFMOUNT_TESTDATA`, by default
/// `../shared/testdata`), which tests only ever read.
pub fn is_shared_fixture(image: &Path) -> bool {
    let testdata = match std::env::var_os("SIFMOUNT_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"),
    };
    match (image.canonicalize(), testdata.canonicalize()) {
        (Ok(image), Ok(testdata)) => image.starts_with(testdata),
        _ => false,
    }
}

/// A file's bytes; fails naming the file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The names in a directory, sorted (lossily decoded), without the summary files of
/// `/cosign` ([`super::without_summary`]); fails naming the directory.
pub fn ls(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    super::without_summary(dir, names)
}

/// Asserts that a command succeeded, showing what it printed and the mount's log.
pub fn assert_ok(out: &Output, what: &str, m: &Mount) {
    assert!(
        out.success(),
        "{what}: {} (stdout: {}; stderr: {}); mount log:\n{}",
        out.status,
        out.stdout,
        out.stderr,
        m.log_text()
    );
}
