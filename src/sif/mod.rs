//! The SIF container format (docs/FORMAT.md, SIF): header, descriptor table, objects.
//!
//! This layer knows nothing of OCI, JSON or FUSE. [`SifImage`] opens, validates and
//! changes an image exactly as the reference library (sylabs/sif v2) does, so that the
//! bytes it writes are identical to upstream's.
#![forbid(unsafe_code)]

mod bytes;
mod descriptor;
mod digest;
mod error;
mod fingerprint;
mod grow;
mod header;
mod image;
pub mod integrity;
mod journal;
mod journal_file;
mod journal_record;
mod journal_store;
mod overlay;
mod publish;
mod slots;
mod storage;
mod validate;
mod writer_lock;

pub use descriptor::{
    fs_type, hash_type, part_type, sbom_format, DataType, Descriptor, Extra, Link, DESCRIPTOR_SIZE,
    EXTRA_LEN, GROUP_MASK, NAME_LEN,
};
pub use digest::{Digest, Hasher};
pub use error::{Result, SifError};
pub use fingerprint::fingerprint;
pub use grow::Growth;
pub use header::{
    format_uuid, parse_uuid, Header, HEADER_SIZE, LAUNCH_SCRIPT_MAX, MAGIC, MAX_DESCRIPTORS,
};
pub use image::{
    AddOptions, ChangeTime, CreateOptions, DeleteOptions, ObjectInput, OpenMode, SetOptions,
    SifImage, DEFAULT_CAPACITY, DEFAULT_DESCRIPTORS_OFFSET,
};
pub use journal::{RecoveryOutcome, MAX_UNDO};
pub use journal_file::{
    canonical_image_path, journal_path, FileJournal, UntrustedJournal, JOURNAL_SUFFIX,
    MAX_JOURNAL_LEN,
};
pub use journal_store::{JournalStore, MemJournal};
pub use publish::PublishLock;
pub use storage::{FileIdentity, MemStorage, Storage};
pub use validate::for_each_used_descriptor;
pub use writer_lock::{changed_on_disk, LockError, WriterLock};

/// "Unset" timestamps: 0001-01-01T00:00:00Z in Unix seconds (Go's zero time).
pub const ZERO_TIME: i64 = -62_135_596_800;

const ARCHES: [(&[u8; 3], &str); 14] = [
    (b"00\0", "unknown"),
    (b"01\0", "386"),
    (b"02\0", "amd64"),
    (b"03\0", "arm"),
    (b"04\0", "arm64"),
    (b"05\0", "ppc64"),
    (b"06\0", "ppc64le"),
    (b"07\0", "mips"),
    (b"08\0", "mipsle"),
    (b"09\0", "mips64"),
    (b"10\0", "mips64le"),
    (b"11\0", "s390x"),
    (b"12\0", "riscv64"),
    (b"13\0", "loong64"),
];

/// The Go architecture name for a stored code, "unknown" for anything else.
pub fn arch_name(code: &[u8; 3]) -> &'static str {
    ARCHES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown", |(_, n)| n)
}

/// The stored code for a Go architecture name.
pub fn arch_code(name: &str) -> Result<[u8; 3]> {
    ARCHES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(c, _)| **c)
        .ok_or_else(|| SifError::InvalidArgument(format!("unknown architecture {name:?}")))
}
