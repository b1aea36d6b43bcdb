//! Errors of the OCI layer.

use crate::sif::{Digest, SifError};

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: Box<OciError>,
    },
    #[error(transparent)]
    Sif(#[from] SifError),
    #[error("not an OCI-SIF: the image has no OCI root index")]
    NotOciSif,
    #[error(
        "the image has {count} OCI root indexes (slots {slots:?}); an OCI-SIF has exactly one"
    )]
    MultipleRootIndexes { count: usize, slots: Vec<usize> },
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("blob {0} is not in the image or the given sources")]
    MissingBlob(Digest),
    #[error("{digest} has media type {media_type:?}, which an OCI-SIF update cannot place (only images and indexes)")]
    UnexpectedMediaType { digest: Digest, media_type: String },
    #[error("not enough descriptors: the update needs {needed} free slots and can have {available} ({free} free + {freed} freed by the update); nothing was changed")]
    InsufficientCapacity {
        needed: usize,
        available: usize,
        free: usize,
        freed: usize,
    },
    #[error("blob {expected}: the source gave bytes with digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },
    #[error("reading blob {digest} from its source: {source}")]
    Source {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
}

impl OciError {
    /// Attaches the image path, once (SIF errors carry it in their own wrapper).
    pub fn in_file(self, path: &str) -> OciError {
        match self {
            OciError::File { .. } => self,
            OciError::Sif(s) => OciError::Sif(s.in_file(path)),
            other => OciError::File {
                path: path.to_string(),
                source: Box::new(other),
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, OciError>;
