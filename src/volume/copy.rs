//! Files written into a committed entry's directory (the man page, ATTACHING). What is
//! the entry's own, or adds annotations to it, is merged into it (`commit.rs`). What is
//! not (another payload, a signature or annotation value the entry does not have) is a
//! copy of another entry under a name that is taken, as `cp -r /mnt1/cosign/ENTRY
//! /mnt2/cosign/` makes when the second image has an entry of that name: those files
//! gather in the directory's copy group, which is judged as any drop and becomes the
//! next entry for its target (or changes nothing, when the image already holds that
//! layer). A refused copy leaves `error` in the directory, saying why.

use super::roles::Role;
use super::staging::{CopyGroup, EntryId, Group, GroupState};
use super::State;
use crate::cosign::{self, DropFiles};
use crate::sif::Digest;
use crate::tree::TreeError;

impl State {
    /// A file of `role` closed in the directory of committed entry `own`.
    pub(super) fn write_to_entry(
        &mut self,
        own: EntryId,
        role: Role,
        data: Vec<u8>,
    ) -> Result<(), TreeError> {
        if role == Role::Derived {
            return Ok(());
        }
        let copy_state = self.staging.copies.get(&own).map(|c| c.state.clone());
        // A copy under way takes every file written into the directory until it commits.
        if let Some(GroupState::Pending | GroupState::Failed(_)) = copy_state {
            return self.add_to_copy(own, role, data);
        }
        // The directory stands for its own entry and, once a copy committed, for that
        // copy too: what fits either is merged into it.
        if let Some(GroupState::Committed(copied)) = copy_state {
            if self.fits(copied, role, &data) {
                return self.merge(copied, role, data);
            }
        }
        if self.fits(own, role, &data) {
            if role == Role::Payload {
                self.staging.payloads_written.insert(own, data.clone());
            }
            return self.merge(own, role, data);
        }
        // A new copy. A payload written before, which was the entry's own, is part of
        // it: the copy of an entry with the same payload and another signature.
        let mut files = std::collections::HashMap::new();
        if role != Role::Payload {
            if let Some(payload) = self.staging.payloads_written.get(&own) {
                files.insert(Role::Payload, payload.clone());
            }
        }
        let error_ino = match self.staging.copies.get(&own) {
            Some(c) => c.error_ino,
            None => self.table.fresh(),
        };
        self.staging.copies.insert(
            own,
            CopyGroup {
                files,
                state: GroupState::Pending,
                error_ino,
            },
        );
        self.add_to_copy(own, role, data)
    }

    fn add_to_copy(&mut self, own: EntryId, role: Role, data: Vec<u8>) -> Result<(), TreeError> {
        let shown = match self.resolve(own) {
            Some((dir, _)) => self.path_of(dir),
            None => format!("cosign entry for payload {}", own.payload),
        };
        let file = role.entry_file().unwrap_or("file");
        if let Some(c) = self.staging.copies.get_mut(&own) {
            c.files.insert(role, data);
        }
        let group = Group::Copy(own);
        let result = self.evaluate(&group, &format!("{shown}/{file}"));
        if result.is_ok() && self.state_of(&group) == GroupState::Pending {
            log::info!(
                "{shown}/{file}: not this entry's; kept as part of a copy of another entry, \
                 which is attached once its payload and signature are written"
            );
        }
        result
    }

    /// Whether `data`, written as `role` into committed entry `id`'s directory, is that
    /// entry's own or only adds to it.
    fn fits(&self, id: EntryId, role: Role, data: &[u8]) -> bool {
        let Some((_, entry)) = self.resolve(id) else {
            return false;
        };
        match role {
            Role::Derived => true,
            Role::Payload => Digest::of(data) == entry.layer.digest,
            _ => {
                let mut drop = DropFiles::default();
                role.fill(&mut drop, data.to_vec());
                cosign::drop_annotations(&drop)
                    .is_ok_and(|extra| cosign::annotations_fit(&entry.annotations(), &extra))
            }
        }
    }

    /// Unlinking a copy's `error` file gives up the copy: what was written stays in the
    /// entry, the directory stands for its own entry again.
    pub(super) fn forget_copy(&mut self, own: EntryId) {
        self.staging.copies.remove(&own);
    }
}
