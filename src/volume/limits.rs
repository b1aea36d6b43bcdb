//! How much `/cosign` may hold in memory: staged bytes are kept in memory until they
//! commit, so every file, and all of them together, have a limit.

use super::handles::Handles;
use super::{State, VolumeOptions};
use crate::tree::{Ino, TreeError};

/// Staged files larger than this are refused: real payloads, signatures and certificates
/// are kilobytes, and staged bytes are held in memory until they commit.
pub const DEFAULT_MAX_STAGED_SIZE: u64 = 16 << 20;

/// At most this many files and directories are held under `/cosign` at once (staged,
/// refused or copied into a directory the user made): a few per signature are real use,
/// and each costs memory and a linear scan of the staging area.
pub const DEFAULT_MAX_STAGED_FILES: usize = 1024;

/// At most this many bytes are held under `/cosign` at once, all staged files and open
/// write sessions together (but never less than the largest file allowed), so that many
/// files each under [`DEFAULT_MAX_STAGED_SIZE`] cannot add up to gigabytes of memory.
pub const DEFAULT_MAX_STAGED_TOTAL: u64 = 64 << 20;

/// The limits a volume was opened with, defaults filled in.
pub(super) struct Limits {
    /// The largest staged file.
    pub(super) file: u64,
    /// The most files and directories staged at once.
    pub(super) count: usize,
    /// The most bytes staged at once, never less than `file`.
    pub(super) total: u64,
}

impl Limits {
    pub(super) fn of(options: &VolumeOptions) -> Limits {
        let or = |n: u64, default: u64| if n == 0 { default } else { n };
        let file = or(options.max_staged_size, DEFAULT_MAX_STAGED_SIZE);
        Limits {
            file,
            count: match options.max_staged_files {
                0 => DEFAULT_MAX_STAGED_FILES,
                n => n,
            },
            total: or(options.max_staged_total, DEFAULT_MAX_STAGED_TOTAL).max(file),
        }
    }

    /// Refuses (ENOSPC, with a log line) growing what `/cosign` holds in memory by
    /// `more` bytes past the total limit.
    pub(super) fn check_total(
        &self,
        st: &State,
        handles: &Handles,
        ino: Ino,
        more: u64,
    ) -> Result<(), TreeError> {
        let max = self.total;
        if more == 0 || staged_bytes(st, handles).saturating_add(more) <= max {
            return Ok(());
        }
        let e = TreeError::NoSpace(
            format!(
                "{}: staged files under cosign/ would hold more than {max} bytes together \
             (-o max_staged_total=); remove staged or refused files first",
                st.path_of(ino)
            )
            .into(),
        );
        log::warn!("{e}");
        Err(e)
    }

    /// Refuses (ENOSPC, with a log line) a new staged file or directory in `parent`
    /// past the count limit.
    pub(super) fn check_count(&self, st: &State, parent: Ino, name: &str) -> Result<(), TreeError> {
        let max = self.count;
        if st.staging.files.len() + st.staging.dirs.len() < max {
            return Ok(());
        }
        let e = TreeError::NoSpace(
            format!(
                "{}/{name}: cosign/ already holds {max} staged files and directories \
             (-o max_staged_files=); remove staged or refused ones first",
                st.path_of(parent)
            )
            .into(),
        );
        log::warn!("{e}");
        Err(e)
    }
}

/// The bytes `/cosign` holds in memory: staged files and open write sessions.
fn staged_bytes(st: &State, handles: &Handles) -> u64 {
    let files: u64 = st.staging.files.values().map(|f| f.data.len() as u64).sum();
    files + handles.session_bytes()
}
