//! The FUSE adapter (docs/ARCHITECTURE.md): turns kernel requests into `Volume` calls and replies.
//! It holds no format logic; [`errno`] is the one place tree errors become errnos.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenAccMode, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, Session, SessionACL,
    SessionUnmounter, TimeOrNow, WriteFlags,
};

use crate::tree::{Attr, Ino, Kind, TreeError};
use crate::volume::{Refused, Volume};

mod guard;
mod readahead;
use guard::Guarded;
pub use guard::{handling_request, panic_message};

/// How long the kernel may cache names and attributes that cannot change: names that say
/// what they hold (digests, image names), and the attributes of the image's files (an
/// inode never changes content). A long time costs nothing and saves a request per
/// `stat`.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// For what can change (`/index.json`, names in `/cosign`, staged files, directories): the
/// kernel asks again every time, so a commit is visible as soon as `close(2)` returns,
/// and another writer's change as soon as the mount has seen it.
const NO_TTL: Duration = Duration::ZERO;

/// How often a mount looks whether another writer changed the image (the cost
/// is reading its header and descriptor table: microseconds for most images, a few
/// milliseconds for 10,000 objects).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// Largest read the kernel is asked to send (it may cap this lower): large reads mean
/// fewer round trips through FUSE for sequential reads of big layers.
const MAX_READAHEAD: u32 = 1 << 20;

/// How the mount is presented; filled from `-o` by the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// Owner shown for every file (default: the mounting user).
    pub uid: u32,
    /// Group shown for every file (default: the mounting user's group).
    pub gid: u32,
    /// `allow_other`: every user may use the mount.
    pub allow_other: bool,
    /// `allow_root`: the mounting user and root may use the mount.
    pub allow_root: bool,
    /// `default_permissions`: the kernel checks modes against the caller.
    pub default_permissions: bool,
    /// The source shown in /proc/mounts (`fsname=`); the image path by default.
    pub fsname: String,
    /// Options passed through to the kernel unchanged (`noexec`, `nosuid`, …).
    pub kernel_options: Vec<String>,
    /// FUSE worker threads.
    pub threads: usize,
}

/// A mounted session; [`MountedSession::run`] serves requests until it is unmounted.
pub struct MountedSession {
    session: Session<Guarded<SifFs>>,
    threads: usize,
}

impl MountedSession {
    /// Serves requests until the file system is unmounted (from outside or through an
    /// [`Unmounter`]).
    pub fn run(self) -> io::Result<()> {
        log::debug!("serving with {} threads", self.threads);
        self.session.run()
    }

    /// A handle that unmounts from another thread (the signal handler thread).
    pub fn unmounter(&mut self) -> Unmounter {
        Unmounter(self.session.unmount_callable())
    }
}

/// Unmounts a session from any thread; the session's `run` then returns.
pub struct Unmounter(SessionUnmounter);

impl Unmounter {
    pub fn unmount(&mut self) -> io::Result<()> {
        self.0.unmount()
    }
}

/// Mounts `volume` at `mountpoint`. Returns once the kernel has completed the FUSE handshake,
/// so the mount is ready for use when this returns.
pub fn mount(
    volume: Volume,
    mountpoint: &Path,
    options: &MountOptions,
) -> io::Result<MountedSession> {
    let mut mount_options = vec![
        if volume.writable() {
            MountOption::RW
        } else {
            MountOption::RO
        },
        MountOption::FSName(options.fsname.clone()),
        // As a kernel option rather than MountOption::Subtype: fuser's own mount(2) call
        // (used as root) drops Subtype, and then the mount table says plain "fuse".
        MountOption::CUSTOM("subtype=sifmount".to_string()),
    ];
    if options.default_permissions {
        mount_options.push(MountOption::DefaultPermissions);
    }
    mount_options.extend(options.kernel_options.iter().map(|o| kernel_option(o)));
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = if options.allow_other {
        SessionACL::All
    } else if options.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    let threads = options.threads.max(1);
    config.n_threads = Some(threads);
    // One /dev/fuse descriptor per worker, so workers do not contend on one queue.
    config.clone_fd = threads > 1;
    let volume = Arc::new(volume);
    follow(Arc::downgrade(&volume))?;
    let fs = SifFs {
        volume,
        uid: options.uid,
        gid: options.gid,
    };
    // Resolved before mounting: afterwards, resolving the mount point would ask the
    // mount, which serves nothing until this returns.
    let canonical = std::fs::canonicalize(mountpoint)?;
    let session = Session::new(Guarded(fs), mountpoint, &config)?;
    match readahead::raise(&canonical) {
        Ok((file, kb)) => log::debug!("readahead {kb} KiB ({})", file.display()),
        Err(e) => log::info!(
            "{}: readahead stays at the kernel's default (128 KiB): cannot raise it: {e}",
            mountpoint.display()
        ),
    }
    Ok(MountedSession { session, threads })
}

fn kernel_option(option: &str) -> MountOption {
    match option {
        "dev" => MountOption::Dev,
        "nodev" => MountOption::NoDev,
        "suid" => MountOption::Suid,
        "nosuid" => MountOption::NoSuid,
        "exec" => MountOption::Exec,
        "noexec" => MountOption::NoExec,
        "atime" => MountOption::Atime,
        "noatime" => MountOption::NoAtime,
        "dirsync" => MountOption::DirSync,
        "sync" => MountOption::Sync,
        "async" => MountOption::Async,
        other => MountOption::CUSTOM(other.to_string()),
    }
}

/// The one place tree errors become errnos.
fn errno(e: &TreeError) -> Errno {
    match e {
        TreeError::NoInode(_) | TreeError::NotFound { .. } => Errno::ENOENT,
        TreeError::NotDir(_) => Errno::ENOTDIR,
        TreeError::IsDir(_) => Errno::EISDIR,
        TreeError::NotSymlink(_) | TreeError::NotFile(_) => Errno::EINVAL,
        TreeError::Read { .. }
        | TreeError::Open(_)
        | TreeError::Update(_)
        | TreeError::NotItsBytes(_) => Errno::EIO,
        TreeError::ReadOnly => Errno::EROFS,
        TreeError::Exists(_) => Errno::EEXIST,
        TreeError::NotEmpty(_) => Errno::ENOTEMPTY,
        TreeError::Rejected(_) => Errno::EINVAL,
        TreeError::Denied(_) => Errno::EPERM,
        TreeError::Withheld(_) => Errno::EACCES,
        TreeError::TooLarge(_) => Errno::EFBIG,
        TreeError::NoSpace(_) => Errno::ENOSPC,
        TreeError::Stale(_) | TreeError::Changed(_) => Errno::ESTALE,
    }
}

/// Logs what the kernel will only see as an errno. Lookups of missing names are normal
/// (shells probe for files all the time) and so is EROFS; refused drops were logged with
/// their reason where they were refused. Unknown inodes are normal on a read-write mount:
/// the kernel keeps names of blobs for long, and can ask about one an attach removed.
fn fail(e: &TreeError) -> Errno {
    match e {
        TreeError::NotFound { .. } | TreeError::ReadOnly | TreeError::Exists(_) => {
            log::debug!("{e}")
        }
        TreeError::NoInode(_) => log::debug!("{e}"),
        TreeError::Read { .. } | TreeError::Open(_) => log::error!("{e}"),
        TreeError::Rejected(_)
        | TreeError::Denied(_)
        | TreeError::TooLarge(_)
        | TreeError::NoSpace(_)
        | TreeError::Stale(_)
        | TreeError::Update(_) => log::debug!("{e}"),
        TreeError::Changed(_) | TreeError::Withheld(_) => log::info!("{e}"),
        _ => log::warn!("{e}"),
    }
    errno(e)
}

fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

/// Starts the thread that makes the mount follow its image ([`Volume::follow_image`]):
/// what other writers commit appears without waiting for a read to meet it. It ends
/// with the volume.
fn follow(volume: Weak<Volume>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("sifmount-follow".into())
        .spawn(move || {
            let mut last_error = String::new();
            loop {
                std::thread::sleep(FOLLOW_INTERVAL);
                let Some(v) = volume.upgrade() else { return };
                match v.follow_image() {
                    Ok(true) => log::info!("the image changed; the mount shows it as it is now"),
                    Ok(false) => last_error.clear(),
                    // Logged once per different error: a writer half-way through a change
                    // sifmount does not know about, or an image broken by one; the mount
                    // goes on showing what it last read, and tries again.
                    Err(e) => {
                        let text = e.to_string();
                        if text != last_error {
                            log::warn!("the image changed, but cannot be read again: {text}");
                            last_error = text;
                        }
                    }
                }
            }
        })
        .map(drop)
}

/// The file system served by the mount: a volume, and the owner it shows.
struct SifFs {
    volume: Arc<Volume>,
    uid: u32,
    gid: u32,
}

impl SifFs {
    fn file_attr(&self, a: &Attr) -> FileAttr {
        let mtime = system_time(a.mtime);
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.blocks,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: system_time(a.crtime),
            kind: file_type(a.kind),
            perm: a.perm,
            nlink: a.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: crate::tree::BLOCK_SIZE,
            flags: 0,
        }
    }

    fn entry_ttl(&self, parent: Ino, name: &[u8], kind: Kind) -> Duration {
        if self.volume.name_is_stable(parent, name, kind) {
            TTL
        } else {
            NO_TTL
        }
    }

    fn attr_ttl(&self, ino: Ino) -> Duration {
        if self.volume.stable(ino) {
            TTL
        } else {
            NO_TTL
        }
    }

    fn reply_entry(
        &self,
        parent: Ino,
        name: &[u8],
        result: Result<Attr, TreeError>,
        reply: ReplyEntry,
    ) {
        match result {
            Ok(a) => reply.entry(
                &self.entry_ttl(parent, name, a.kind),
                &self.file_attr(&a),
                Generation(0),
            ),
            Err(e) => reply.error(fail(&e)),
        }
    }
}

fn reply_empty(result: Result<(), TreeError>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(fail(&e)),
    }
}

impl fuser::Filesystem for SifFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if let Err(max) = config.set_max_readahead(MAX_READAHEAD) {
            let _ = config.set_max_readahead(max);
        }
        // Each is an optimisation the kernel may lack; a mount works without any of them.
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
        ] {
            if config.add_capabilities(flag).is_err() {
                log::debug!("kernel lacks {flag:?}");
            }
        }
        // With it, O_TRUNC arrives with the open instead of as a separate truncate, so
        // rewriting a committed file can be compared with what it holds at close.
        if self.volume.writable()
            && config
                .add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC)
                .is_err()
        {
            log::debug!("kernel lacks FUSE_ATOMIC_O_TRUNC");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        use std::os::unix::ffi::OsStrExt;
        let name = name.as_bytes();
        self.reply_entry(parent.0, name, self.volume.lookup(parent.0, name), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.volume.attr_for(ino.0, fh.map(|f| f.0)) {
            Ok(a) => reply.attr(&self.attr_ttl(ino.0), &self.file_attr(&a)),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.volume.readlink(ino.0) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        match self.volume.open_file(ino.0, write, truncate) {
            // An image file's inode never changes content: keep its pages across opens.
            // Staged files change, and written bytes must reach the volume, not the cache.
            Ok(o) if o.cacheable => reply.opened(FileHandle(o.fh), FopenFlags::FOPEN_KEEP_CACHE),
            Ok(o) => reply.opened(FileHandle(o.fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(fail(&e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut buf = Vec::new();
        match self
            .volume
            .read(ino.0, fh.0, offset, size as usize, &mut buf)
        {
            Ok(()) => reply.data(&buf),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        match self.volume.open_dir(ino.0, write) {
            // A read-only mount's listings never change: let the kernel keep them.
            Ok(fh) if !self.volume.writable() => {
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_CACHE_DIR)
            }
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.volume.release_dir(fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self
            .volume
            .list_from(ino.0, fh.0, offset, |e, next, _attr, _stable| {
                reply.add(INodeNo(e.ino), next, file_type(e.kind), &e.name)
            });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listed = self
            .volume
            .list_from(ino.0, fh.0, offset, |e, next, attr, stable| {
                let ttl = if stable { TTL } else { NO_TTL };
                reply.add(
                    INodeNo(e.ino),
                    next,
                    &e.name,
                    &ttl,
                    &self.file_attr(attr),
                    Generation(0),
                )
            });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.volume.stats();
        reply.statfs(
            s.blocks,
            0,
            0,
            s.files,
            0,
            s.block_size,
            s.max_name_len,
            s.block_size,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.volume.access(ino.0, mask.contains(AccessFlags::W_OK)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail(&e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.volume.setattr(ino.0, size, fh.map(|f| f.0)) {
            Ok(a) => reply.attr(&NO_TTL, &self.file_attr(&a)),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(fail(&self.volume.refuse(Refused::Node)));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        use std::os::unix::ffi::OsStrExt;
        let name = name.as_bytes();
        self.reply_entry(parent.0, name, self.volume.mkdir(parent.0, name), reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        use std::os::unix::ffi::OsStrExt;
        reply_empty(self.volume.unlink(parent.0, name.as_bytes()), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        use std::os::unix::ffi::OsStrExt;
        reply_empty(self.volume.rmdir(parent.0, name.as_bytes()), reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(fail(&self.volume.refuse(Refused::Symlink)));
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(fail(&self.volume.refuse(Refused::Rename)));
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(fail(&self.volume.refuse(Refused::HardLink)));
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.volume.write_at(ino.0, fh.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(fail(&e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        use std::os::unix::ffi::OsStrExt;
        match self.volume.create(parent.0, name.as_bytes()) {
            Ok((a, fh)) => reply.created(
                &NO_TTL,
                &self.file_attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(fail(&e)),
        }
    }

    // close(2) waits for FLUSH, not for RELEASE (which the kernel sends later, on its
    // own): so a drop commits, and reports why it cannot, here.
    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.volume.flush(ino.0, fh.0), reply);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.volume.release(ino.0, fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every commit is fsynced before its close returns; staged bytes are not meant
        // to be durable until they commit.
        reply.ok();
    }

    // Extended attributes are not part of the tree: ENOSYS makes the kernel stop asking
    // for the rest of the mount, which spares a round trip on every `ls -l`.

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    #[allow(clippy::too_many_arguments)]
    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }
}
