//! Committing: a complete group of staged files becomes an entry of the image (appended
//! with the upstream update algorithm in `src/cosign/`), a file written over a committed
//! entry is compared with it or merged into it, and `rm -r` of an entry removes it. Every
//! change is checked against other writers first (`refresh.rs`) and shown after.

use super::roles::Role;
use super::staging::{EntryId, Group, GroupState};
use super::State;
use crate::cosign::{self, AttachError, AttachOutcome, DropFiles, Origin, Verdict};
use crate::sif::Digest;
use crate::tree::{Ino, TreeError};

impl State {
    pub(super) fn flush_staged(&mut self, ino: Ino) -> Result<(), TreeError> {
        let Some(f) = self.staging.files.get_mut(&ino) else {
            return Ok(());
        };
        f.complete = true;
        if !f.listed {
            return Ok(());
        }
        let (group, role, data) = (f.group.clone(), f.role, f.data.clone());
        let shown = self.path_of(ino);
        if let Group::Sign(name) = &group {
            return self.sign_request(name, &data, &shown);
        }
        match self.state_of(&group) {
            GroupState::Committed(id) => {
                let result = match group {
                    Group::Entry(own) => self.write_to_entry(own, role, data),
                    _ => self.merge(id, role, data),
                };
                // Merged or refused, a file in /cosign or in the entry's own directory has
                // said what it had to: the entry (and an alias to its file) is what remains.
                // A directory the user made keeps the files written into it.
                let f = self.staging.files.get_mut(&ino).expect("still staged");
                match group {
                    Group::Top(_) => {
                        f.listed = false;
                        if result.is_ok() {
                            let name = f.name.clone();
                            self.add_alias(name, id, role.entry_file());
                        }
                    }
                    Group::Entry(_) | Group::Copy(_) | Group::Sign(_) => f.listed = false,
                    Group::Dir(_) => {
                        if result.is_err() {
                            f.listed = false;
                        }
                    }
                }
                result
            }
            GroupState::Pending | GroupState::Failed(_) => self.evaluate(&group, &shown),
        }
    }

    /// What the refusal of `group` says: it begins with the path of the file the problem is
    /// in when the error names one of the group's files by its role (a bad payload refused
    /// at the close of its `.sig`), else with the path of the file just closed (`shown`).
    fn refusal_text(&self, group: &Group, shown: &str, e: &AttachError) -> String {
        if let AttachError::Invalid { file, problem } = e {
            let culprit = self
                .staging
                .files
                .iter()
                .filter(|(_, f)| {
                    f.listed && &f.group == group && f.role.entry_file() == Some(file.as_str())
                })
                .map(|(&ino, _)| ino)
                .min();
            if let Some(ino) = culprit {
                let path = self.path_of(ino);
                // In a directory the file's name is its role; directly in /cosign the role
                // says what the name was taken for (`cosign/a: payload: not valid JSON`).
                return if path.ends_with(&format!("/{file}")) {
                    format!("{path}: {problem}")
                } else {
                    format!("{path}: {e}")
                };
            }
        }
        format!("{shown}: {e}")
    }

    /// Commits `group` if it is complete; records and returns why not if it is wrong.
    pub(super) fn evaluate(&mut self, group: &Group, shown: &str) -> Result<(), TreeError> {
        let refused = self
            .staging
            .files
            .values()
            .find(|f| f.listed && &f.group == group && f.refused.is_some())
            .and_then(|f| f.refused.clone());
        if let Some(refusal) = refused {
            self.set_state(group, GroupState::Failed(refusal.reason().to_string()));
            return Err(refusal.error());
        }
        let (drop, payload_complete) = self.gather(group);
        let fail = |st: &mut State, e: AttachError| {
            let reason = st.refusal_text(group, shown, &e);
            st.set_state(group, GroupState::Failed(reason.clone()));
            TreeError::of_attach(e, reason)
        };
        if let Err(e) = cosign::drop_annotations(&drop) {
            return Err(fail(self, e));
        }
        if !payload_complete {
            self.set_state(group, GroupState::Pending);
            return Ok(());
        }
        let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
        let prepared = cosign::prepare(writer, &drop);
        // What prepare read is only trustworthy if the file is still ours.
        if !matches!(prepared, Ok(None)) {
            if let Err(e) = self.check_unchanged() {
                self.set_state(group, GroupState::Failed(format!("{shown}: {e}")));
                return Err(e);
            }
        }
        let attachment = match prepared {
            Ok(Some(a)) => a,
            Ok(None) => {
                self.set_state(group, GroupState::Pending);
                return Ok(());
            }
            Err(e) => return Err(fail(self, e)),
        };
        self.attach_made(group, shown, &attachment)
    }

    /// Attaches what a drop or a signing request made (`-o verify_drops` first), and
    /// makes `group` that entry; records and returns why not.
    pub(super) fn attach_made(
        &mut self,
        group: &Group,
        shown: &str,
        attachment: &cosign::Attachment,
    ) -> Result<(), TreeError> {
        let fail = |st: &mut State, e: AttachError| {
            let reason = st.refusal_text(group, shown, &e);
            st.set_state(group, GroupState::Failed(reason.clone()));
            TreeError::of_attach(e, reason)
        };
        if self.verify_drops {
            if let Verdict::Failed { reason } = attachment.verdict(&self.tree_options.trust) {
                return Err(fail(self, AttachError::Unverified { reason }));
            }
        }
        let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
        let outcome = cosign::attach(writer, attachment);
        let id = EntryId {
            kind: attachment.kind,
            target: attachment.target,
            payload: attachment.layer.digest,
        };
        match outcome {
            Ok(AttachOutcome::Unchanged) => {}
            Ok(AttachOutcome::Attached) => {
                if let Err(e) = self.committed_to_image() {
                    self.set_state(group, GroupState::Failed(format!("{shown}: {e}")));
                    return Err(e);
                }
            }
            Err(e) => {
                self.reopen_writer();
                return Err(fail(self, e));
            }
        }
        log::info!(
            "{shown}: attached {} {} to {}",
            attachment.kind.short_name(),
            attachment.layer.digest,
            attachment.target
        );
        self.commit(group, id);
        Ok(())
    }

    /// The staged files of `group` have become entry `id`.
    pub(super) fn commit(&mut self, group: &Group, id: EntryId) {
        let mut aliases = Vec::new();
        if let Group::Top(_) | Group::Sign(_) = group {
            for f in self.staging.files.values_mut() {
                if f.listed && &f.group == group {
                    f.listed = false;
                    if let Group::Top(_) = group {
                        aliases.push((f.name.clone(), f.role.entry_file()));
                    }
                }
            }
        }
        let unused: Vec<Ino> = self
            .staging
            .files
            .iter()
            .filter(|(_, f)| !f.listed && f.opens == 0)
            .map(|(&ino, _)| ino)
            .collect();
        for ino in unused {
            self.staging.files.remove(&ino);
        }
        for (name, file) in aliases {
            self.add_alias(name, id, file);
        }
        self.set_state(group, GroupState::Committed(id));
    }

    /// Compares (payload) or merges (annotation files) what was written to a committed
    /// entry's file.
    pub(super) fn merge(
        &mut self,
        id: EntryId,
        role: Role,
        data: Vec<u8>,
    ) -> Result<(), TreeError> {
        let Some((dir, entry)) = self.resolve(id) else {
            return Err(TreeError::Denied(
                format!(
                    "cosign: the {} entry for payload {} is no longer in the image",
                    id.kind.short_name(),
                    id.payload
                )
                .into(),
            ));
        };
        let shown = format!("cosign/{}", entry.name);
        match role {
            Role::Derived => Ok(()),
            Role::Payload => {
                if Digest::of(&data) == entry.layer.digest {
                    Ok(())
                } else {
                    Err(self.denied(dir, "the payload of a committed entry cannot change"))
                }
            }
            _ => {
                let mut drop = DropFiles::default();
                role.fill(&mut drop, data);
                let extra = cosign::drop_annotations(&drop).map_err(|e| {
                    let message = format!("{shown}: {e}");
                    TreeError::of_attach(e, message)
                })?;
                let current = entry.annotations();
                if extra.iter().all(|(k, v)| current.get(k) == Some(v)) {
                    return Ok(());
                }
                let Origin::Tag(ref_name) = &entry.origin else {
                    return Err(self.denied(
                        dir,
                        "only entries stored as _cosign: images can take new annotations",
                    ));
                };
                let (ref_name, layer_index, digest) =
                    (ref_name.clone(), entry.layer_index, entry.layer.digest);
                if self.verify_drops {
                    let mut amended = current.clone();
                    amended.extend(extra.clone());
                    self.check_amended_verifies(entry, amended)
                        .map_err(|e| self.denied(dir, &e.to_string()))?;
                }
                self.check_unchanged()?;
                let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
                match cosign::amend(writer, &ref_name, layer_index, &digest, &extra) {
                    Ok(AttachOutcome::Unchanged) => Ok(()),
                    Ok(AttachOutcome::Attached) => {
                        log::info!("{shown}: annotations {:?} added", extra.keys());
                        self.committed_to_image()
                    }
                    Err(e) => {
                        self.reopen_writer();
                        Err({
                            let message = format!("{shown}: {e}");
                            TreeError::of_attach(e, message)
                        })
                    }
                }
            }
        }
    }

    /// `verify_drops`: the committed entry with `annotations` instead of its own must
    /// verify.
    fn check_amended_verifies(
        &self,
        entry: &cosign::Entry,
        annotations: std::collections::BTreeMap<String, String>,
    ) -> Result<(), AttachError> {
        let writer = self.writer.as_ref().ok_or_else(|| AttachError::NotFound {
            what: "the image is not open for writing".to_string(),
        })?;
        let payload = writer.read_blob(&entry.layer.digest)?;
        let mut layer = entry.layer.clone();
        layer.annotations = Some(annotations);
        let attachment = cosign::Attachment {
            kind: entry.kind,
            target: entry.target,
            layer,
            payload,
        };
        match attachment.verdict(&self.tree_options.trust) {
            Verdict::Verified { .. } => Ok(()),
            Verdict::Failed { reason } => Err(AttachError::Unverified { reason }),
        }
    }

    pub(super) fn remove_entry(&mut self, id: EntryId) -> Result<(), TreeError> {
        let Some((dir, entry)) = self.resolve(id) else {
            return Err(TreeError::NoInode(0));
        };
        let shown = format!("cosign/{}", entry.name);
        let (manifest, layer_index, digest) =
            (entry.manifest, entry.layer_index, entry.layer.digest);
        let ref_name = match &entry.origin {
            Origin::Tag(ref_name) => Some(ref_name.clone()),
            Origin::Referrer { listed: true } => None,
            Origin::Referrer { listed: false } => {
                return Err(self.denied(
                    dir,
                    "this referrer is not listed in the root index (cosign save leaves \
                     referrers so), and only listed ones can be removed",
                ))
            }
            Origin::SaveKind(_) => {
                return Err(self.denied(
                    dir,
                    "only entries stored as _cosign: images or listed referrers can be removed",
                ))
            }
        };
        self.check_unchanged()?;
        let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
        let removed = match &ref_name {
            Some(ref_name) => cosign::detach(writer, ref_name, layer_index, &digest),
            None => cosign::detach_referrer(writer, &manifest, &digest),
        };
        if let Err(e) = removed {
            self.reopen_writer();
            return Err({
                let message = format!("{shown}: {e}");
                TreeError::of_attach(e, message)
            });
        }
        let ref_name = ref_name.unwrap_or_else(|| format!("referrer {manifest}"));
        log::info!("{shown}: removed ({ref_name} layer {layer_index})");
        self.staging.hidden.remove(&id);
        self.staging.copies.remove(&id);
        self.staging.payloads_written.remove(&id);
        self.committed_to_image()?;
        // Names that stood for the removed entry go with it.
        let gone: Vec<String> = self
            .staging
            .aliases
            .iter()
            .filter(|(_, a)| self.resolve(a.entry).is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            self.staging.aliases.remove(&name);
        }
        self.staging
            .top
            .retain(|_, g| !matches!(g.state, GroupState::Committed(e) if e == id));
        Ok(())
    }
}
