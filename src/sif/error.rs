//! Errors of the container-format layer.

use std::io;

/// Everything that can go wrong reading or changing a SIF file.
///
/// Messages name the object concerned (slot and ID) so that a user can find the problem
/// with `siftool`; [`SifError::File`] adds the path of the image.
#[derive(Debug, thiserror::Error)]
pub enum SifError {
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: Box<SifError>,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("not a SIF file: {0}")]
    NotSif(String),
    #[error("unsupported SIF version {0:?} (only \"01\" exists)")]
    UnsupportedVersion(String),
    #[error("invalid SIF header: {0}")]
    InvalidHeader(String),
    #[error("descriptor in slot {slot} (id {id}): {problem}")]
    InvalidDescriptor {
        slot: usize,
        id: u32,
        problem: String,
    },
    #[error("insufficient descriptor capacity to add data object(s) to image ({free} free, {needed} needed)")]
    InsufficientCapacity { free: i64, needed: i64 },
    #[error("object not found")]
    ObjectNotFound,
    #[error("multiple objects found")]
    MultipleObjects,
    #[error("image already contains a primary partition")]
    PrimaryPartitionExists,
    #[error("object {id} is not a partition")]
    NotPartition { id: u32 },
    #[error(
        "object {id} is a partition of type {part_type}, only system partitions can become primary"
    )]
    NotSystemPartition { id: u32, part_type: i32 },
    #[error("object {id} is not an OCI blob or root index")]
    NotOciObject { id: u32 },
    #[error("{what} is {len} bytes, at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid digest {0:?}: expected sha256:<64 lower-case hex digits>")]
    InvalidDigest(String),
    #[error("image is open read-only")]
    ReadOnly,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A read-only open found the journal of an update that a crash interrupted: the
    /// image bytes may be half old, half new.
    #[error(
        "an interrupted update of this image is recorded in {journal}: mount the image \
         read-write or run `sifmount --recover IMAGE` to complete it"
    )]
    PendingUpdate { journal: String },
    /// An update could be neither completed nor undone; the message says what recovers it.
    #[error("{0}")]
    UpdateInterrupted(String),
    #[error(
        "{journal}: update journal format {version} is not known to this sifmount; recover \
         the image with the sifmount that wrote it"
    )]
    UnsupportedJournal { journal: String, version: u32 },
    /// What is at the journal's name is not a journal of this image as it is: not one
    /// this sifmount could have written, or one of another file, or of this file before it
    /// was rewritten. Nothing was written; `advice` says what to do.
    #[error("{journal}: not applying it to the image: {why}; nothing was written. {advice}")]
    JournalRefused {
        journal: String,
        why: String,
        advice: String,
    },
    /// A read-write open of a file with more than one name: its journal would be found
    /// beside one of them only.
    #[error(
        "the image has {links} hard links, and its update journal is kept beside one name \
         only, so a crash while writing through one would leave the others showing a \
         half-written image with nothing beside it to recover it; open it read-only, or give \
         it a file of its own (cp IMAGE NEW && mv NEW IMAGE)"
    )]
    HardLinked { links: u64 },
}

impl SifError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SifError::Io {
            context: context.into(),
            source,
        }
    }

    /// Attaches the image path to an error, once.
    pub fn in_file(self, path: &str) -> Self {
        match self {
            SifError::File { .. } => self,
            other => SifError::File {
                path: path.to_string(),
                source: Box::new(other),
            },
        }
    }

    /// The error without the path wrapper, for matching on the kind of problem.
    pub fn kind(&self) -> &SifError {
        match self {
            SifError::File { source, .. } => source.kind(),
            other => other,
        }
    }
}

pub type Result<T> = std::result::Result<T, SifError>;
