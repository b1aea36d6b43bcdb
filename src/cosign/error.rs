//! Errors of the cosign layer.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CosignError {
    /// A document (payload, envelope, bundle, key) is not what it should be.
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },
    /// The OCI layer below failed (missing blob, unreadable image).
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
}

impl CosignError {
    pub fn invalid(what: impl Into<String>, problem: impl Into<String>) -> CosignError {
        CosignError::Invalid {
            what: what.into(),
            problem: problem.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, CosignError>;
