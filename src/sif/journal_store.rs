//! Where an image's update journal is kept, and what an open image holds of it.
//!
//! How a change becomes crash-safe (transactions, commit, recovery) is `journal.rs`; the
//! bytes of a record, `journal_record.rs`; the file beside the image that holds them,
//! `journal_file.rs`. This file is apart from `journal.rs` so that `image.rs`, which keeps
//! a [`Journaling`] in every [`SifImage`](super::SifImage), and `journal_file.rs`, which
//! implements [`JournalStore`], need nothing from the code that drives a transaction.

use std::io;
use std::sync::{Arc, Mutex};

use super::error::{Result, SifError};
use super::overlay::Overlay;

/// Where a journal record is kept.
pub trait JournalStore: Send + Sync {
    /// The stored record, if there is one (whole, or torn by a crash).
    fn load(&self) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the record with `bytes` and makes it durable (the file and its name).
    fn store(&self, bytes: &[u8]) -> io::Result<()>;
    /// Removes the record, durably.
    fn clear(&self) -> io::Result<()>;
    /// How messages name the journal.
    fn name(&self) -> String {
        "the update journal".to_string()
    }
}

/// A journal in memory, for tests; clones share the record.
#[derive(Clone, Debug, Default)]
pub struct MemJournal(Arc<Mutex<Option<Vec<u8>>>>);

impl MemJournal {
    pub fn new(contents: Option<Vec<u8>>) -> MemJournal {
        MemJournal(Arc::new(Mutex::new(contents)))
    }

    /// The stored record, if any.
    pub fn contents(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_contents(&self, contents: Option<Vec<u8>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = contents;
    }
}

impl JournalStore for MemJournal {
    fn load(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.contents())
    }
    fn store(&self, bytes: &[u8]) -> io::Result<()> {
        self.set_contents(Some(bytes.to_vec()));
        Ok(())
    }
    fn clear(&self) -> io::Result<()> {
        self.set_contents(None);
        Ok(())
    }
}

/// The transaction state of a [`SifImage`](super::SifImage); only `journal.rs` changes
/// it.
#[derive(Default)]
pub(super) struct Journaling {
    /// Where records go; `None` for an image that writes in place, as upstream does.
    pub(super) store: Option<Box<dyn JournalStore>>,
    /// The overlay standing in for the storage while a transaction runs.
    pub(super) overlay: Option<Arc<Overlay>>,
    /// Why changes are refused: an update could be neither completed nor undone.
    pub(super) broken: Option<String>,
}

impl Journaling {
    pub(super) fn new(store: Option<Box<dyn JournalStore>>) -> Journaling {
        Journaling {
            store,
            overlay: None,
            broken: None,
        }
    }

    pub(super) fn check_usable(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(SifError::UpdateInterrupted(why.clone())),
            None => Ok(()),
        }
    }

    /// Whether a single change must be made a transaction of its own: the image has a
    /// journal and no transaction is running.
    pub(super) fn wants_transaction(&self) -> bool {
        self.store.is_some() && self.overlay.is_none()
    }
}
