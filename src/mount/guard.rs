//! Panic safety at the kernel boundary: a bug met while serving one request fails that
//! request with EIO and is logged, instead of ending a worker thread. fuser answers a
//! request whose reply was dropped unsent with EIO, so unwinding out of a handler is
//! enough for the kernel side; what this adds is the thread (and so the mount) living on,
//! and a log line saying what happened.
//!
//! [`handling_request`] tells a panic hook whether the panic it sees is one of these, to
//! be survived, or one elsewhere, after which the mount must go before the process does
//! (see `src/bin/sifmount/daemon.rs`).

use std::any::Any;
use std::cell::Cell;
use std::ffi::OsStr;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, FileHandle, Filesystem, INodeNo, IoctlFlags,
    KernelConfig, LockOwner, OpenFlags, PollEvents, PollFlags, PollNotifier, RenameFlags,
    ReplyAttr, ReplyBmap, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};

thread_local! {
    /// The operation this thread is serving inside [`guarded`], if any.
    static HANDLING: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Whether the calling thread is inside a guarded request handler: a panic there is
/// caught, answered with EIO and logged.
pub fn handling_request() -> bool {
    HANDLING.with(|h| h.get().is_some())
}

/// Runs `f`, the handler of one `op` request; a panic in it is logged and ends there.
pub fn guarded<T>(op: &'static str, f: impl FnOnce() -> T) -> Option<T> {
    let outer = HANDLING.with(|h| h.replace(Some(op)));
    let result = catch_unwind(AssertUnwindSafe(f));
    HANDLING.with(|h| h.set(outer));
    match result {
        Ok(value) => Some(value),
        Err(payload) => {
            log::error!(
                "internal error while serving a {op} request: {}; it failed with EIO and \
                 the mount serves on",
                panic_message(payload.as_ref())
            );
            None
        }
    }
}

/// What `panic!` was given, when it was a message.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}

/// A file system whose every handler runs [`guarded`]. It forwards every method of the
/// trait on Linux, so that one the inner file system comes to implement is not silently
/// replaced by fuser's default; all but `batch_forget`, whose type fuser does not export
/// and whose default calls the forwarded `forget`.
pub struct Guarded<F>(pub F);

macro_rules! forward {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)* $(,)?); )*) => {
        $(
            fn $name(&self $(, $arg: $ty)*) {
                guarded(stringify!($name), || self.0.$name($($arg),*));
            }
        )*
    };
}

#[allow(clippy::too_many_arguments)]
impl<F: Filesystem> Filesystem for Guarded<F> {
    fn init(&mut self, req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let inner = &mut self.0;
        guarded("init", || inner.init(req, config))
            .unwrap_or_else(|| Err(io::Error::other("internal error while starting the mount")))
    }

    fn destroy(&mut self) {
        let inner = &mut self.0;
        guarded("destroy", || inner.destroy());
    }

    forward! {
        fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry);
        fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr);
        fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData);
        fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen);
        fn read(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            offset: u64,
            size: u32,
            flags: OpenFlags,
            lock_owner: Option<LockOwner>,
            reply: ReplyData,
        );
        fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen);
        fn releasedir(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            flags: OpenFlags,
            reply: ReplyEmpty,
        );
        fn readdir(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            offset: u64,
            reply: ReplyDirectory,
        );
        fn readdirplus(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            offset: u64,
            reply: ReplyDirectoryPlus,
        );
        fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs);
        fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty);
        fn setattr(
            &self,
            req: &Request,
            ino: INodeNo,
            mode: Option<u32>,
            uid: Option<u32>,
            gid: Option<u32>,
            size: Option<u64>,
            atime: Option<TimeOrNow>,
            mtime: Option<TimeOrNow>,
            ctime: Option<SystemTime>,
            fh: Option<FileHandle>,
            crtime: Option<SystemTime>,
            chgtime: Option<SystemTime>,
            bkuptime: Option<SystemTime>,
            flags: Option<BsdFileFlags>,
            reply: ReplyAttr,
        );
        fn mknod(
            &self,
            req: &Request,
            parent: INodeNo,
            name: &OsStr,
            mode: u32,
            umask: u32,
            rdev: u32,
            reply: ReplyEntry,
        );
        fn mkdir(
            &self,
            req: &Request,
            parent: INodeNo,
            name: &OsStr,
            mode: u32,
            umask: u32,
            reply: ReplyEntry,
        );
        fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty);
        fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty);
        fn symlink(
            &self,
            req: &Request,
            parent: INodeNo,
            link_name: &OsStr,
            target: &Path,
            reply: ReplyEntry,
        );
        fn rename(
            &self,
            req: &Request,
            parent: INodeNo,
            name: &OsStr,
            newparent: INodeNo,
            newname: &OsStr,
            flags: RenameFlags,
            reply: ReplyEmpty,
        );
        fn link(
            &self,
            req: &Request,
            ino: INodeNo,
            newparent: INodeNo,
            newname: &OsStr,
            reply: ReplyEntry,
        );
        fn write(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            offset: u64,
            data: &[u8],
            write_flags: WriteFlags,
            flags: OpenFlags,
            lock_owner: Option<LockOwner>,
            reply: ReplyWrite,
        );
        fn create(
            &self,
            req: &Request,
            parent: INodeNo,
            name: &OsStr,
            mode: u32,
            umask: u32,
            flags: i32,
            reply: ReplyCreate,
        );
        fn flush(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            lock_owner: LockOwner,
            reply: ReplyEmpty,
        );
        fn release(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            flags: OpenFlags,
            lock_owner: Option<LockOwner>,
            flush: bool,
            reply: ReplyEmpty,
        );
        fn fsync(
            &self,
            req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            datasync: bool,
            reply: ReplyEmpty,
        );
        fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr);
        fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr);
        fn setxattr(
            &self,
            req: &Request,
            ino: INodeNo,
            name: &OsStr,
            value: &[u8],
            flags: i32,
            position: u32,
            reply: ReplyEmpty,
        );
        fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty);
        fn forget(&self, req: &Request, ino: INodeNo, nlookup: u64);
        fn fsyncdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty);
        fn getlk(&self, req: &Request, ino: INodeNo, fh: FileHandle, lock_owner: LockOwner, start: u64, end: u64, typ: i32, pid: u32, reply: ReplyLock);
        fn setlk(&self, req: &Request, ino: INodeNo, fh: FileHandle, lock_owner: LockOwner, start: u64, end: u64, typ: i32, pid: u32, sleep: bool, reply: ReplyEmpty);
        fn bmap(&self, req: &Request, ino: INodeNo, blocksize: u32, idx: u64, reply: ReplyBmap);
        fn ioctl(&self, req: &Request, ino: INodeNo, fh: FileHandle, flags: IoctlFlags, cmd: u32, in_data: &[u8], out_size: u32, reply: ReplyIoctl);
        fn poll(&self, req: &Request, ino: INodeNo, fh: FileHandle, ph: PollNotifier, events: PollEvents, flags: PollFlags, reply: ReplyPoll);
        fn fallocate(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, length: u64, mode: i32, reply: ReplyEmpty);
        fn lseek(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek);
        fn copy_file_range(&self, req: &Request, ino_in: INodeNo, fh_in: FileHandle, offset_in: u64, ino_out: INodeNo, fh_out: FileHandle, offset_out: u64, len: u64, flags: CopyFileRangeFlags, reply: ReplyWrite);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_handler_ends_in_the_handler() {
        assert!(!handling_request());
        let inside = guarded("lookup", handling_request);
        assert_eq!(inside, Some(true));
        let caught = guarded("read", || -> u32 { panic!("a bug") });
        assert_eq!(caught, None);
        assert!(!handling_request(), "the flag is cleared after a panic too");
        // Nested: the outer handler is still the one being served after the inner ends.
        let nested = guarded("outer", || {
            let _ = guarded("inner", || panic!("inner bug"));
            handling_request()
        });
        assert_eq!(nested, Some(true));
    }

    #[test]
    fn panic_messages_are_shown() {
        let p = catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "static text");
        let p = catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "formatted 42");
        let p = catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "a panic without a message");
    }
}
