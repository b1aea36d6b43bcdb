//! Every call into the C library, each behind a safe function: the rest of the crate, and
//! the `sifmount` binary, forbid `unsafe` code. A function here takes only what makes its
//! call sound (owned or borrowed descriptors, NUL-terminated names), returns
//! [`io::Error`] for the C error, and says in one `SAFETY` line why its call is sound.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A return code of 0 as success, anything else as the thread's `errno`.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// --- Files ------------------------------------------------------------------------------

/// `flock(fd, LOCK_EX | LOCK_NB)`: an error of `EWOULDBLOCK` when another holds it.
pub fn flock_exclusive_now(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: flock on an open descriptor; no memory is passed.
    check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })
}

/// `fcntl(fd, cmd, &flock)` for an open-file-description lock (`F_OFD_SETLK` or
/// `F_OFD_SETLKW`) of `kind` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) on `len` bytes at `start`.
pub fn ofd_lock(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    kind: libc::c_short,
    start: libc::off_t,
    len: libc::off_t,
) -> io::Result<()> {
    // SAFETY: an all-zero flock is a valid value of this plain C struct (l_pid must be 0
    // for OFD locks); the fields that matter are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    // SAFETY: a lock command on an open descriptor, given a flock that outlives the call.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl as *mut libc::flock) })
}

/// `copy_file_range` within one file: copies up to `len` bytes from `*from` to `*to`,
/// advancing both; returns how many (0 at the end of the file).
pub fn copy_file_range_within(
    fd: BorrowedFd<'_>,
    from: &mut libc::loff_t,
    to: &mut libc::loff_t,
    len: usize,
) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    // SAFETY: both offsets are valid, exclusive pointers to loff_t for the call.
    let n = unsafe { libc::copy_file_range(fd, from, fd, to, len, 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `openat(dir, name, flags, mode)`.
pub fn open_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<File> {
    // SAFETY: the name is NUL-terminated and outlives the call.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: what is at the name, not what it links to.
pub fn stat_at_no_follow(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the name is NUL-terminated; `st` has room for one stat.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(rc)?;
    // SAFETY: fstatat succeeded, so it filled the stat.
    Ok(unsafe { st.assume_init() })
}

/// `unlinkat(dir, name, 0)`; a final link is removed, never followed.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: the name is NUL-terminated and outlives the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
}

/// `access(path, W_OK)`: whether this process may write the file.
pub fn may_write(path: &CStr) -> bool {
    // SAFETY: the path is NUL-terminated and outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// `statfs(path)`.
pub fn statfs(path: &CStr) -> io::Result<libc::statfs> {
    let mut buf = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the path is NUL-terminated; `buf` has room for one statfs.
    check(unsafe { libc::statfs(path.as_ptr(), buf.as_mut_ptr()) })?;
    // SAFETY: statfs succeeded, so it filled the buffer.
    Ok(unsafe { buf.assume_init() })
}

/// `umount2(path, flags)`.
pub fn umount2(path: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: the path is NUL-terminated and outlives the call.
    check(unsafe { libc::umount2(path.as_ptr(), flags) })
}

/// `dup2(from, to)`: `to` names what `from` names.
pub fn dup2(from: BorrowedFd<'_>, to: RawFd) -> io::Result<()> {
    // SAFETY: `from` is open; dup2 closes and replaces `to` atomically.
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pipe2(O_CLOEXEC)`: the read end, then the write end.
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `poll` for input on one descriptor: whether it became readable within `millis`.
pub fn poll_readable(fd: BorrowedFd<'_>, millis: libc::c_int) -> io::Result<bool> {
    let mut fds = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: fds points to one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut fds, 1, millis) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc > 0)
}

// --- Processes and signals --------------------------------------------------------------

/// The real user ID.
pub fn uid() -> libc::uid_t {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The real group ID.
pub fn gid() -> libc::gid_t {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

/// The effective user ID.
pub fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Which side of a [`fork_single_threaded`] this is.
pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// `fork()`, refused while the process has more than one thread: only then may the child
/// do anything the parent could (another thread could hold a lock the child would wait
/// on forever).
pub fn fork_single_threaded() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "cannot fork a process of {threads} threads"
        )));
    }
    // SAFETY: the process has one thread (checked above).
    match unsafe { libc::fork() } {
        pid if pid < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `setsid()`: a new session, with no controlling terminal.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid has no preconditions.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(pid, signal)`.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check(unsafe { libc::kill(pid, signal) })
}

/// `waitpid(pid)`: the wait status once `pid` has ended; with `wait` false, `None` while it
/// runs.
pub fn waitpid(pid: libc::pid_t, wait: bool) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    let flags = if wait { 0 } else { libc::WNOHANG };
    // SAFETY: status is a valid out-pointer for the call.
    match unsafe { libc::waitpid(pid, &mut status, flags) } {
        rc if rc < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        _ => Ok(Some(status)),
    }
}

/// A set of signals ([`block_signals`], [`wait_signal`]).
pub struct SignalSet(libc::sigset_t);

/// Blocks `signals` in the calling thread (and so in the threads it starts afterwards);
/// returns them as a set for [`wait_signal`].
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<SignalSet> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset only sets bits in it.
    let set = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &signal in signals {
            if libc::sigaddset(set.as_mut_ptr(), signal) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        set.assume_init()
    };
    // SAFETY: set is initialised; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(SignalSet(set))
}

/// `sigwait`: waits for one of the (blocked) signals of `set` and returns it.
pub fn wait_signal(set: &SignalSet) -> io::Result<libc::c_int> {
    let mut signal = 0;
    // SAFETY: the set is initialised; signal is a valid out-pointer.
    let rc = unsafe { libc::sigwait(&set.0, &mut signal) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(signal)
}

// --- The system log ---------------------------------------------------------------------

/// `openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON)`. openlog keeps the pointer, so the
/// name must live for the whole program.
pub fn open_syslog(ident: &'static CStr) {
    // SAFETY: the ident is NUL-terminated and 'static, as openlog requires.
    unsafe {
        libc::openlog(
            ident.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_DAEMON,
        )
    };
}

/// `syslog(priority, "%s", text)`: the text is never read as a format.
pub fn syslog(priority: libc::c_int, text: &CStr) {
    // SAFETY: a constant "%s" format with one NUL-terminated string argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
}

// --- Memory -----------------------------------------------------------------------------

/// Gives the pages of freed memory back to the system (glibc's `malloc_trim`).
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free pages to the kernel; it has no preconditions.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keeps every thread's allocations in one glibc arena (`mallopt(M_ARENA_MAX, 1)`); to be
/// called before other threads exist.
pub fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator parameter.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn fork_is_refused_while_other_threads_run() {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || wait.recv());
        let refused = fork_single_threaded().err();
        done.send(()).unwrap();
        other.join().unwrap().unwrap();
        let e = refused.expect("a fork of a threaded process");
        assert!(e.to_string().contains("threads"), "{e}");
    }

    #[test]
    fn a_pipe_polls_readable_once_written_and_closes_on_exec() {
        let (read, write) = pipe_cloexec().unwrap();
        assert!(!poll_readable(read.as_fd(), 0).unwrap());
        File::from(write).write_all(b"x").unwrap();
        assert!(poll_readable(read.as_fd(), 1000).unwrap());
        let flags =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", read.as_raw_fd())).unwrap();
        let octal = flags
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_ne!(octal & libc::O_CLOEXEC as u32, 0, "close-on-exec");
    }

    #[test]
    fn names_in_a_directory_are_opened_statted_and_unlinked_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("target"), b"t").unwrap();
        std::os::unix::fs::symlink("target", dir.path().join("link")).unwrap();
        let d = File::open(dir.path()).unwrap();
        let st = stat_at_no_follow(d.as_fd(), c"link").unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        let e = open_at(d.as_fd(), c"link", libc::O_RDONLY | libc::O_NOFOLLOW, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        let f = open_at(d.as_fd(), c"new", libc::O_WRONLY | libc::O_CREAT, 0o600).unwrap();
        drop(f);
        unlink_at(d.as_fd(), c"link").unwrap();
        assert!(
            dir.path().join("target").exists(),
            "the link went, not its target"
        );
        assert_eq!(
            unlink_at(d.as_fd(), c"link").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
