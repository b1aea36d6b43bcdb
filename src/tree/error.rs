//! Why a tree or volume operation failed. Each variant is one errno (the mount's one
//! table, `src/mount.rs`); what a message says and what caused it travel with it.

use std::error::Error;
use std::fmt;

use super::Ino;
use crate::cosign::AttachError;

/// A message for the user, and the error it came from when there is one: the chain of
/// causes stays whole (`Error::source`), the message says it in one line.
#[derive(Debug)]
pub struct Because {
    message: String,
    cause: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl Because {
    /// `message`, caused by `cause`.
    pub fn with(message: String, cause: impl Error + Send + Sync + 'static) -> Because {
        Because {
            message,
            cause: Some(Box::new(cause)),
        }
    }
}

impl From<String> for Because {
    fn from(message: String) -> Because {
        Because {
            message,
            cause: None,
        }
    }
}

impl From<&str> for Because {
    fn from(message: &str) -> Because {
        message.to_string().into()
    }
}

impl fmt::Display for Because {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for Because {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn Error + 'static))
    }
}

/// The message, as text.
impl std::ops::Deref for Because {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

/// Why a tree operation failed. The mount maps each to an errno in one place.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Open(Because),
    #[error("no inode {0}")]
    NoInode(Ino),
    #[error("no entry {name:?} in directory inode {parent}")]
    NotFound { parent: Ino, name: String },
    #[error("inode {0} is not a directory")]
    NotDir(Ino),
    #[error("inode {0} is a directory")]
    IsDir(Ino),
    #[error("inode {0} is not a regular file")]
    NotFile(Ino),
    #[error("inode {0} is not a symbolic link")]
    NotSymlink(Ino),
    /// A change outside `/cosign`, or on a read-only mount (EROFS).
    #[error("read-only: changes are taken only under /cosign of a read-write mount")]
    ReadOnly,
    #[error("{0}: already exists")]
    Exists(String),
    #[error("directory inode {0} is not empty")]
    NotEmpty(Ino),
    /// A dropped file or name that cannot be accepted (EINVAL), with the reason.
    #[error(transparent)]
    Rejected(Because),
    /// A change to something committed, or not allowed there (EPERM).
    #[error(transparent)]
    Denied(Because),
    /// An object `-o require_signed` withholds: only images without a verifying
    /// signature use it (EACCES).
    #[error(transparent)]
    Withheld(Because),
    /// A staged file over the size limit (EFBIG).
    #[error(transparent)]
    TooLarge(Because),
    /// No room for what was asked (ENOSPC).
    #[error(transparent)]
    NoSpace(Because),
    /// Updating the image failed (EIO); the image holds its previous state.
    #[error(transparent)]
    Update(Because),
    /// The image was changed by another program while mounted (ESTALE): writing over
    /// its change would corrupt it.
    #[error(transparent)]
    Stale(Because),
    /// The object a read was of is no longer where the tree says (another writer changed
    /// the image since the tree was built): the bytes read are not served (ESTALE).
    #[error(transparent)]
    Changed(Because),
    /// The bytes where an object lies do not have the digest it is named by (another
    /// program is writing the image, or it is damaged): they are not served (EIO).
    #[error(transparent)]
    NotItsBytes(Because),
    #[error("{path}: cannot read {what}: {source}")]
    Read {
        path: String,
        what: String,
        source: std::io::Error,
    },
}

impl TreeError {
    /// The one conversion of a refused attach, amend or detach: the kind of refusal
    /// decides the variant (and so the errno), `message` says what was refused and why.
    pub fn of_attach(e: AttachError, message: String) -> TreeError {
        let variant = match &e {
            AttachError::Invalid { .. } => TreeError::Rejected,
            AttachError::Conflict { .. }
            | AttachError::NotFound { .. }
            | AttachError::Unverified { .. } => TreeError::Denied,
            AttachError::Full { .. } => TreeError::NoSpace,
            AttachError::Oci(_) if os_error(&e) == Some(libc::ENOSPC) => TreeError::NoSpace,
            AttachError::Oci(_) => TreeError::Update,
        };
        variant(Because::with(message, e))
    }
}

/// The OS error at the bottom of `e`'s chain of causes, if any: a full disk should say
/// ENOSPC, not EIO.
fn os_error(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cause = c.source();
    }
    None
}
