//! Serving a mount in the foreground or as a daemon, and unmounting on SIGINT, SIGTERM
//! and SIGHUP.
//!
//! Daemonizing forks before any thread exists (fuser starts its workers in `mount`), so the
//! child is an ordinary single-threaded copy. The parent returns only when the child says
//! the mount is ready, or why it is not, over a pipe: the caller of `sifmount` (a script,
//! mount(8), systemd) can use the mount as soon as it exits 0.

use std::fs::File;
use std::io::{self, Read, Write};

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use sifmount::mount::{self, MountOptions, MountedSession, Unmounter};
use sifmount::sys::{self, Forked, SignalSet};
use sifmount::volume::Volume;

use crate::checks;
use crate::fatal::{one_line, Fatal};

/// How long the parent waits for the child to mount. Mounting does no image I/O (the tree
/// is built before the fork), so only a wedged kernel or fusermount3 takes this long.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Set by the panic hook once a panic outside a request handler has detached the mount.
static PANICKED: AtomicBool = AtomicBool::new(false);

const READY: &str = "ready";
const FAILED: &str = "error ";

/// What to mount where.
pub struct Request {
    /// As the user gave it, for messages.
    pub image: PathBuf,
    /// Canonical (checks::mountpoint).
    pub mountpoint: PathBuf,
    pub options: MountOptions,
}

/// Mounts and serves until unmounted, in this process.
pub fn foreground(volume: Volume, request: &Request) -> Result<(), Fatal> {
    let signals = block_termination_signals()?;
    let session = mount::mount(volume, &request.mountpoint, &request.options)
        .map_err(|e| checks::explain_mount_error(&e, &request.image, &request.mountpoint))?;
    unmount_on_panic(&request.mountpoint);
    info!(
        "mounted {} at {}",
        request.image.display(),
        request.mountpoint.display()
    );
    serve(session, signals, &request.mountpoint)?;
    info!("unmounted {}", request.mountpoint.display());
    Ok(())
}

/// Mounts in a daemon child and returns once the mount is ready (or has failed).
pub fn background(volume: Volume, request: &Request) -> Result<(), Fatal> {
    let threads = thread_count();
    if threads != Some(1) {
        // fork() copies only the calling thread; another thread holding a lock (the
        // allocator's, the logger's) would leave it locked forever in the child.
        return Err(Fatal::failure(format!(
            "internal error: cannot daemonize with {} threads running; use -f",
            threads.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string())
        )));
    }
    // Buffered output would otherwise be written twice, once by each process.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let (ready_read, ready_write) = pipe()?;

    let pid = match sys::fork_single_threaded() {
        Err(e) => {
            return Err(Fatal::failure(format!(
                "cannot fork the mount process: {e}"
            )))
        }
        Ok(Forked::Child) => {
            drop(ready_read);
            let status = child(volume, request, File::from(ready_write));
            std::process::exit(status);
        }
        Ok(Forked::Parent(pid)) => pid,
    };
    drop(ready_write);
    // The child owns the image now; the parent's copy of the descriptor is just closed.
    drop(volume);
    wait_until_ready(File::from(ready_read), pid, &request.mountpoint)
}

/// The daemon: returns its exit status.
fn child(volume: Volume, request: &Request, mut ready: File) -> i32 {
    let report = |ready: &mut File, fatal: &Fatal| {
        let _ = writeln!(ready, "{FAILED}{}", one_line(&fatal.message));
    };
    // Its own session: no controlling terminal, so closing the terminal that started it
    // or pressing Ctrl-C there does not reach the daemon.
    // The child of fork is never a group leader, so this cannot fail with EPERM.
    if let Err(e) = sys::setsid() {
        report(&mut ready, &Fatal::failure(format!("setsid: {e}")));
        return 1;
    }
    let signals = match block_termination_signals() {
        Ok(s) => s,
        Err(fatal) => {
            report(&mut ready, &fatal);
            return 1;
        }
    };
    let mut session = match mount::mount(volume, &request.mountpoint, &request.options) {
        Ok(s) => s,
        Err(e) => {
            let fatal = checks::explain_mount_error(&e, &request.image, &request.mountpoint);
            report(&mut ready, &fatal);
            return 1;
        }
    };
    unmount_on_panic(&request.mountpoint);
    // Before saying "ready": once the parent exits, whoever ran sifmount must not wait
    // for the daemon to close stdout and stderr (a shell's $(...), a test's pipes).
    if let Err(e) = detach_from_caller() {
        let _ = session.unmounter().unmount();
        report(
            &mut ready,
            &Fatal::failure(format!("cannot detach the mount process: {e}")),
        );
        return 1;
    }
    if ready.write_all(format!("{READY}\n").as_bytes()).is_err() {
        // The parent is gone (killed by its caller): nobody knows this mount exists, so
        // leaving it would be a surprise.
        let _ = session.unmounter().unmount();
        return 1;
    }
    drop(ready);
    match serve(session, signals, &request.mountpoint) {
        Ok(()) => 0,
        Err(fatal) => {
            error!("{}", fatal.message);
            1
        }
    }
}

/// stdin, stdout and stderr to /dev/null, logs to syslog; working directory `/` so that
/// the daemon does not keep another file system busy.
fn detach_from_caller() -> io::Result<()> {
    let null = File::options().read(true).write(true).open("/dev/null")?;
    crate::logging::to_syslog();
    for fd in 0..=2 {
        sys::dup2(null.as_fd(), fd)?;
    }
    std::env::set_current_dir("/")
}

fn wait_until_ready(mut pipe: File, pid: libc::pid_t, mountpoint: &Path) -> Result<(), Fatal> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut message = Vec::new();
    loop {
        if message.contains(&b'\n') {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            stop(pid);
            return Err(Fatal::failure(format!(
                "{0}: the mount did not become ready within {1} seconds; gave up and stopped \
                 the mount process (if {0} is left as a stale mount, clear it with: \
                 sifmount -u {0})",
                mountpoint.display(),
                READY_TIMEOUT.as_secs()
            )));
        }
        if !poll_readable(&pipe, left)? {
            continue;
        }
        let mut chunk = [0u8; 4096];
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => message.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Fatal::failure(format!(
                    "cannot read from the mount process: {e}"
                )))
            }
        }
    }
    let message = String::from_utf8_lossy(&message);
    let line = message.lines().next().unwrap_or("");
    if line == READY {
        return Ok(());
    }
    let status = reap(pid);
    match line.strip_prefix(FAILED) {
        Some(reason) => Err(Fatal::failure(reason)),
        None => Err(Fatal::failure(format!(
            "{}: the mount process {status} before the mount was ready",
            mountpoint.display()
        ))),
    }
}

/// Ends a child that is stuck mounting. SIGTERM first: the child blocks it until its
/// signal thread runs, which then unmounts, so a mount that completes late is not left
/// stale; SIGKILL if that does not end it soon, since a child stuck in the kernel or on
/// fusermount3 never reaches its signal thread.
fn stop(pid: libc::pid_t) {
    // Errors are not reported: the child may have ended meanwhile, which is the aim.
    let _ = sys::kill(pid, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if matches!(sys::waitpid(pid, false), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = sys::kill(pid, libc::SIGKILL);
    reap(pid);
}

/// Waits for the child to exit and says how it ended.
fn reap(pid: libc::pid_t) -> String {
    let status = loop {
        match sys::waitpid(pid, true) {
            Ok(Some(status)) => break status,
            Ok(None) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return format!("ended in an unknown way ({e})"),
        }
    };
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended with wait status {status}")
    }
}

fn poll_readable(pipe: &File, timeout: Duration) -> Result<bool, Fatal> {
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    match sys::poll_readable(pipe.as_fd(), millis) {
        Ok(ready) => Ok(ready),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(Fatal::failure(format!(
            "cannot wait for the mount process: {e}"
        ))),
    }
}

/// A close-on-exec pipe: fusermount3, which fuser runs in the child, must not inherit the
/// write end, or the parent could wait on it after the child has died.
fn pipe() -> Result<(OwnedFd, OwnedFd), Fatal> {
    sys::pipe_cloexec().map_err(|e| Fatal::failure(format!("cannot create a pipe: {e}")))
}

fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|entries| entries.count())
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every thread it
/// starts afterwards (fuser's workers): they are then delivered only to the thread that
/// waits for them with sigwait, which unmounts, instead of killing the process with the
/// mount left behind stale.
fn block_termination_signals() -> Result<SignalSet, Fatal> {
    sys::block_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
        .map_err(|e| Fatal::failure(format!("cannot block signals: {e}")))
}

/// A panic in a request handler fails that request (see `mount::guard`); one anywhere
/// else (the signal thread, fuser's own loop, the main thread) would end the process with
/// the mount left stale, every access failing with "transport endpoint is not connected".
/// So the hook detaches the mount first, lazily: it leaves the namespace at once, and the
/// session ends when its last user lets go. A panic hook runs before any unwinding (or an
/// abort), so it covers panics that nothing catches.
fn unmount_on_panic(mountpoint: &Path) {
    let mountpoint = mountpoint.to_path_buf();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if mount::handling_request() {
            // Caught and logged by the guard, which the request then fails with EIO.
            log::debug!("{info}");
            return;
        }
        error!(
            "internal error: {info}; unmounting {} (lazily) so that it is not left stale",
            mountpoint.display()
        );
        PANICKED.store(true, Ordering::SeqCst);
        if let Err(e) = crate::unmount::detach(&mountpoint) {
            error!("cannot unmount {}: {e}", mountpoint.display());
        }
        default(info);
    }));
}

/// Serves the mount until it is unmounted: by a signal, by `sifmount -u`, `umount` or
/// `fusermount3 -u` from outside.
fn serve(mut session: MountedSession, signals: SignalSet, mountpoint: &Path) -> Result<(), Fatal> {
    let unmounter = Arc::new(Mutex::new(session.unmounter()));
    if let Err(e) = spawn_signal_thread(signals, Arc::clone(&unmounter), mountpoint) {
        let _ = lock(&unmounter).unmount();
        return Err(Fatal::failure(format!(
            "cannot start the signal thread: {e}; unmounted {}",
            mountpoint.display()
        )));
    }
    session.run().map_err(|e| {
        // The session failing must not leave the mount behind, stale.
        if let Err(u) = lock(&unmounter).unmount() {
            warn!("cannot unmount {}: {u}", mountpoint.display());
        }
        Fatal::failure(format!(
            "{}: serving the mount failed: {e}",
            mountpoint.display()
        ))
    })?;
    if PANICKED.load(Ordering::SeqCst) {
        return Err(Fatal::failure(format!(
            "{}: unmounted after an internal error (see the log)",
            mountpoint.display()
        )));
    }
    Ok(())
}

fn spawn_signal_thread(
    signals: SignalSet,
    unmounter: Arc<Mutex<Unmounter>>,
    mountpoint: &Path,
) -> io::Result<()> {
    let mountpoint = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            // fuser's unmounter is spent after one attempt, even a failed one.
            let mut tried = false;
            loop {
                // The set is blocked in this thread too (inherited).
                let signal = match sys::wait_signal(&signals) {
                    Ok(signal) => signal,
                    Err(e) => {
                        error!("sigwait: {e}");
                        return;
                    }
                };
                info!(
                    "{}: unmounting {}",
                    signal_name(signal),
                    mountpoint.display()
                );
                let clean = if tried {
                    Err(io::Error::other("already tried"))
                } else {
                    tried = true;
                    lock(&unmounter).unmount()
                };
                // Busy (a process works in the mount, or the kernel has not yet sent the
                // release of a file just closed): detach lazily, as libfuse file systems
                // do on a signal. The mount leaves the namespace now and the session ends
                // when its last user lets go, so no stale mount is left either way.
                if let Err(e) = clean {
                    log::debug!("unmount {}: {e}; detaching", mountpoint.display());
                    match crate::unmount::detach(&mountpoint) {
                        Ok(()) => info!(
                            "detached {} (busy): serving its remaining users until they \
                             let go",
                            mountpoint.display()
                        ),
                        Err(e) => warn!(
                            "cannot unmount {}: {e}; still serving",
                            mountpoint.display()
                        ),
                    }
                }
            }
        })
        .map(|_| ())
}

/// A panic while unmounting cannot leave the unmounter half-changed in a way that
/// matters: the next attempt asks the kernel again.
fn lock(unmounter: &Mutex<Unmounter>) -> std::sync::MutexGuard<'_, Unmounter> {
    unmounter
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn signal_name(signal: libc::c_int) -> String {
    match signal {
        libc::SIGINT => "SIGINT".to_string(),
        libc::SIGTERM => "SIGTERM".to_string(),
        libc::SIGHUP => "SIGHUP".to_string(),
        n => format!("signal {n}"),
    }
}
