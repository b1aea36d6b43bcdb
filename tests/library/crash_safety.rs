//! Crash safety of updates (`src/sif/journal.rs`, man page CRASH SAFETY): every
//! update is cut short after each possible number of writes, the image is reopened as a
//! fresh process would reopen it, and it must be exactly the old file or exactly the new
//! one. Also: torn and corrupt journals, a full disk in the middle of an update, failures
//! inside an update, read-only opens and `SifImage::recover` on real files, and the
//! number of syncs a commit costs.
//!
//! Why this file is long: the failing, full and counting storages and journals are made
//! for these tests alone, and every test drives the same sweep (cut an update short after
//! each write, reopen, compare) through them; apart they would each need all of it.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{assert_bytes_eq, eio, images, read_upstream};
use sifmount::cosign::{attach, cosign_ref_name, detach, prepare, DropFiles, EntryKind};
use sifmount::oci::{BlobSource, Manifest, OciError, OciSif};
use sifmount::sif::{
    journal_path, Descriptor, Digest, JournalStore, MemJournal, MemStorage, OpenMode,
    RecoveryOutcome, SifError, SifImage, Storage, DESCRIPTOR_SIZE,
};

const SIGNED1: &str = "generated/squashfs-image.signed1.oci.sif";
const SIGNED2: &str = "generated/squashfs-image.signed2.oci.sif";
/// An OCI-SIF with no spare descriptor: the first attach grows its table.
const NO_SPARE: &str = "generated/hello-world-docker-v2-manifest.oci.sif";
/// Valid standard base64, as the signature annotation must be; attach does not verify.
const SIGNATURE: &str = "c2lmbW91bnQgY3Jhc2ggc2FmZXR5IHRlc3Qgc2lnbmF0dXJl";

/// Writes left before the "crash", shared by a storage and a journal, and whether any
/// operation was refused.
#[derive(Clone)]
struct Budget {
    left: Arc<AtomicUsize>,
    crashed: Arc<AtomicBool>,
    /// The refused write writes the first half of its bytes (a torn sector write).
    torn: bool,
}

impl Budget {
    fn new(torn: bool) -> Budget {
        Budget {
            left: Arc::new(AtomicUsize::new(usize::MAX)),
            crashed: Arc::new(AtomicBool::new(false)),
            torn,
        }
    }

    fn set(&self, n: usize) {
        self.left.store(n, Ordering::SeqCst);
    }

    /// Takes one write; `Err` once there is none left. The first refusal says so, for
    /// the torn mode.
    fn take(&self) -> Result<(), bool> {
        match self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        {
            Ok(_) => Ok(()),
            Err(_) => Err(!self.crashed.swap(true, Ordering::SeqCst)),
        }
    }

    fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }
}

/// An image (in memory, or a file) whose writes stop when the budget runs out.
struct FaultyStorage {
    inner: Arc<dyn Storage>,
    budget: Budget,
}

impl FaultyStorage {
    fn take(&self, torn_write: Option<(&[u8], u64)>) -> io::Result<()> {
        match self.budget.take() {
            Ok(()) => Ok(()),
            Err(first) => {
                if let (true, true, Some((buf, offset))) = (first, self.budget.torn, torn_write) {
                    self.inner.write_all_at(&buf[..buf.len() / 2], offset)?;
                }
                Err(eio())
            }
        }
    }
}

impl Storage for FaultyStorage {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.take(Some((buf, offset)))?;
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.take(None)?;
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn copy_range(&self, src: u64, dst: u64, len: u64) -> io::Result<()> {
        self.take(None)?;
        self.inner.copy_range(src, dst, len)
    }
    fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        self.take(None)?;
        self.inner.zero_range(offset, len)
    }
    fn identity(&self) -> Option<sifmount::sif::FileIdentity> {
        self.inner.identity()
    }
}

/// A memory journal whose stores and clears stop when the budget runs out; it
/// remembers the largest record stored.
struct FaultyJournal {
    inner: MemJournal,
    budget: Budget,
    largest: Arc<AtomicUsize>,
}

impl JournalStore for FaultyJournal {
    fn load(&self) -> io::Result<Option<Vec<u8>>> {
        self.inner.load()
    }
    fn store(&self, bytes: &[u8]) -> io::Result<()> {
        if let Err(first) = self.budget.take() {
            if first && self.budget.torn {
                self.inner.store(&bytes[..bytes.len() / 2])?;
            }
            return Err(eio());
        }
        self.largest.fetch_max(bytes.len(), Ordering::SeqCst);
        self.inner.store(bytes)
    }
    fn clear(&self) -> io::Result<()> {
        self.budget.take().map_err(|_| eio())?;
        self.inner.clear()
    }
}

/// An update to cut short.
type Operation = dyn Fn(&mut OciSif) -> Result<(), String>;

/// Opens `bytes` with a journal, as `sifmount` opens a file read-write.
fn open_journaled(storage: Box<dyn Storage>, journal: Box<dyn JournalStore>) -> OciSif {
    let sif = SifImage::from_storage_with_journal(storage, journal, OpenMode::ReadWrite)
        .unwrap_or_else(|e| panic!("open: {e}"));
    OciSif::from_sif(sif).unwrap_or_else(|e| panic!("open as OCI-SIF: {e}"))
}

/// The bytes `op` makes of `old` when nothing fails.
fn run_clean(old: &[u8], op: &Operation) -> Vec<u8> {
    let mem = Arc::new(MemStorage::new(old.to_vec()));
    let journal = MemJournal::default();
    let mut oci = open_journaled(Box::new(mem.clone()), Box::new(journal.clone()));
    op(&mut oci).unwrap_or_else(|e| panic!("the operation without faults: {e}"));
    assert_eq!(
        journal.contents(),
        None,
        "a completed update leaves no journal"
    );
    mem.to_vec()
}

/// What a crash sweep found.
#[derive(Debug, Default)]
struct Sweep {
    crash_points: usize,
    old: usize,
    new: usize,
    /// The largest journal record written.
    journal_bytes: usize,
}

/// Runs `op` on `old` with a budget of k writes for k = 0, 1, … until it completes; after
/// each crash, reopens the bytes and journal left behind with plain storage (which
/// recovers) and checks they are exactly `old` or exactly `new`.
fn sweep(what: &str, old: &[u8], new: &[u8], op: &Operation, torn: bool) -> Sweep {
    assert_ne!(old, new, "{what}: the operation changes the image");
    let mut found = Sweep::default();
    for k in 0.. {
        assert!(k < 10_000, "{what}: never completes");
        let mem = Arc::new(MemStorage::new(old.to_vec()));
        let journal = MemJournal::default();
        let budget = Budget::new(torn);
        let largest = Arc::new(AtomicUsize::new(0));
        let mut oci = open_journaled(
            Box::new(FaultyStorage {
                inner: mem.clone(),
                budget: budget.clone(),
            }),
            Box::new(FaultyJournal {
                inner: journal.clone(),
                budget: budget.clone(),
                largest: largest.clone(),
            }),
        );
        budget.set(k);
        let result = op(&mut oci);
        drop(oci);
        found.journal_bytes = found.journal_bytes.max(largest.load(Ordering::SeqCst));
        if !budget.crashed() {
            result.unwrap_or_else(|e| panic!("{what}: fails with {k} writes allowed: {e}"));
            assert_bytes_eq(&mem.to_vec(), new, &format!("{what}: completed"));
            assert_eq!(
                journal.contents(),
                None,
                "{what}: journal left after success"
            );
            return found;
        }
        if result.is_ok() {
            // Only the journal's removal can fail after the update is durable; success is
            // then the truth, and the leftover journal must replay to the same bytes.
            assert_bytes_eq(
                &mem.to_vec(),
                new,
                &format!("{what}, crash after {k} writes, reported success"),
            );
        }
        found.crash_points += 1;
        assert_no_object_overwritten_while_described(
            old,
            &mem.to_vec(),
            &format!(
                "{what}, crash after {k} writes{}",
                if torn { " (torn)" } else { "" }
            ),
        );

        // A new process: the bytes and the journal as the crash left them.
        let after = Arc::new(MemStorage::new(mem.to_vec()));
        let left = MemJournal::new(journal.contents());
        let reopened = open_journaled(Box::new(after.clone()), Box::new(left.clone()));
        assert_eq!(
            reopened.verify_blobs().unwrap(),
            vec![],
            "{what}, crash {k}"
        );
        assert_eq!(
            left.contents(),
            None,
            "{what}, crash {k}: journal not cleared"
        );
        let bytes = after.to_vec();
        if bytes == old {
            found.old += 1;
        } else if bytes == new {
            found.new += 1;
        } else {
            assert_bytes_eq(&bytes, new, &format!("{what}, crash after {k} writes"));
        }
    }
    unreachable!()
}

/// What a mount's reads rely on (src/tree/mod.rs, `Tree::read`): at every point of an
/// update, an object of the old image whose descriptor the file still holds unchanged
/// (with the table where it was) still has all its old bytes, or is cut short by a
/// truncation (a read of it fails); never other bytes. So a reader that checks the
/// descriptor after reading can never serve bytes an update wrote over the object.
fn assert_no_object_overwritten_while_described(old: &[u8], now: &[u8], what: &str) {
    let before =
        SifImage::from_storage(Box::new(MemStorage::new(old.to_vec())), OpenMode::ReadOnly)
            .unwrap();
    if now.len() < 112 || now[96..112] != old[96..112] {
        return; // the header moved the table: every reader looks again
    }
    let table = before.header().descriptors_offset as usize;
    for (slot, d) in before.descriptors() {
        let at = table + slot * DESCRIPTOR_SIZE;
        let Some(raw) = now.get(at..at + DESCRIPTOR_SIZE) else {
            continue;
        };
        let still = Descriptor::decode(raw);
        let same = still.used
            && still.offset == d.offset
            && still.size == d.size
            && still.data_type_raw == d.data_type_raw
            && still.extra == d.extra
            && (d.data_type().is_oci() || (still.id, still.modified_at) == (d.id, d.modified_at));
        let (start, end) = (d.offset as usize, d.end() as usize);
        if same && end <= now.len() {
            assert!(
                now[start..end] == old[start..end],
                "{what}: object {} (slot {slot}) was written over while its descriptor still \
                 described it",
                d.id
            );
        }
    }
}

/// Both sweeps (clean and torn writes) of one case; prints and checks what they tried.
fn check_case(what: &str, old: &[u8], new: &[u8], op: &Operation) -> usize {
    let mut points = 0;
    for torn in [false, true] {
        let s = sweep(what, old, new, op, torn);
        println!(
            "{what}{}: {} crash points tried: {} old, {} new; journal record {} bytes",
            if torn { " (torn writes)" } else { "" },
            s.crash_points,
            s.old,
            s.new,
            s.journal_bytes
        );
        assert!(s.crash_points >= 3, "{what}: {s:?}");
        assert_eq!(s.old + s.new, s.crash_points, "{what}: {s:?}");
        assert!(s.old > 0 && s.new > 0, "{what}: both outcomes occur: {s:?}");
        points += s.crash_points;
    }
    points
}

/// The newest `.sig` layer of an upstream file as a drop: payload and annotations.
fn last_signature_drop(rel: &str) -> DropFiles {
    let oci = OciSif::from_sif(
        SifImage::from_storage(
            Box::new(MemStorage::new(read_upstream(rel))),
            OpenMode::ReadOnly,
        )
        .unwrap(),
    )
    .unwrap();
    let (_, m) = sig_manifest(&oci);
    let last = m.layers.last().unwrap();
    DropFiles {
        payload: Some(oci.read_blob(&last.digest).unwrap()),
        annotations: Some(serde_json::to_vec(last.annotations.as_ref().unwrap()).unwrap()),
        ..DropFiles::default()
    }
}

/// The `.sig` image of the first root-index entry: its name and manifest.
fn sig_manifest(oci: &OciSif) -> (String, Manifest) {
    let root = oci.root_index().unwrap();
    let target = root.entries()[0].digest;
    let name = cosign_ref_name(EntryKind::Signature, &target).unwrap();
    let entry = root
        .entries()
        .iter()
        .find(|e| e.ref_name() == Some(name.as_str()))
        .expect("a signature image");
    let m = Manifest::parse(&oci.read_blob(&entry.digest).unwrap()).unwrap();
    (name, m)
}

fn attach_drop(drop: DropFiles) -> impl Fn(&mut OciSif) -> Result<(), String> {
    move |oci| {
        let a = prepare(oci, &drop)
            .map_err(|e| format!("prepare: {e}"))?
            .expect("a complete drop");
        attach(oci, &a).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// A simple-signing payload for the first root-index entry of `oci`, and its signature.
fn new_signature(oci: &OciSif) -> DropFiles {
    let target = oci.root_index().unwrap().entries()[0].digest;
    let payload = serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": "example.com/sifmount/crash"},
            "image": {"docker-manifest-digest": target.to_string()},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap();
    DropFiles {
        payload: Some(payload),
        signature: Some(format!("{SIGNATURE}\n").into_bytes()),
        ..DropFiles::default()
    }
}

fn plain(bytes: &[u8]) -> OciSif {
    OciSif::from_sif(
        SifImage::from_storage(
            Box::new(MemStorage::new(bytes.to_vec())),
            OpenMode::ReadOnly,
        )
        .unwrap(),
    )
    .unwrap()
}

#[test]
fn every_crash_during_an_attach_leaves_the_old_or_the_new_file() {
    let old = read_upstream(SIGNED1);
    let new = read_upstream(SIGNED2);
    let op = attach_drop(last_signature_drop(SIGNED2));
    // Without faults, the journaled attach is upstream's signing byte for byte.
    assert_bytes_eq(&run_clean(&old, &op), &new, "attach onto signed1");
    let points = check_case("attach (signed1 + signature = signed2)", &old, &new, &op);
    println!("attach: {points} crash points in all");
}

#[test]
fn every_crash_during_a_detach_leaves_the_old_or_the_new_file() {
    let old = read_upstream(SIGNED2);
    let new = read_upstream(SIGNED1);
    let op = |oci: &mut OciSif| {
        let (name, m) = sig_manifest(oci);
        detach(oci, &name, 1, &m.layers[1].digest).map_err(|e| e.to_string())
    };
    assert_bytes_eq(&run_clean(&old, &op), &new, "detach from signed2");
    let points = check_case("detach (signed2 - signature = signed1)", &old, &new, &op);
    println!("detach: {points} crash points in all");
}

#[test]
fn every_crash_during_a_blob_removal_leaves_the_old_or_the_new_file() {
    let old = read_upstream(SIGNED2);
    let (_, m) = sig_manifest(&plain(&old));
    let doomed = m.layers[0].digest;
    let op = move |oci: &mut OciSif| oci.remove_blob(&doomed).map_err(|e| e.to_string());
    let new = run_clean(&old, &op);
    assert!(plain(&new).blob(&doomed).is_none());
    let points = check_case("remove_blob", &old, &new, &op);
    println!("remove_blob: {points} crash points in all");
}

#[test]
fn every_crash_during_an_attach_that_grows_the_table_leaves_the_old_or_the_new_file() {
    let old = read_upstream(NO_SPARE);
    let before = plain(&old);
    assert_eq!(before.sif().free_slots(), 0, "{NO_SPARE} has no spare slot");
    let op = attach_drop(new_signature(&before));
    let new = run_clean(&old, &op);
    let after = plain(&new);
    assert!(
        after.sif().slots().len() > before.sif().slots().len(),
        "the table grew"
    );
    // Objects were moved out of the table's way: some object's offset changed.
    let moved = before
        .sif()
        .descriptors()
        .filter(|(_, d)| {
            after
                .sif()
                .descriptor_by_id(d.id)
                .is_ok_and(|a| a.offset != d.offset)
        })
        .count();
    assert!(moved > 0, "the growth moved objects");
    let points = check_case("attach with table growth", &old, &new, &op);
    println!("attach with growth: {points} crash points in all, {moved} object(s) moved");
}

/// A growth past a large first layer leaves it where it is (the table is written after
/// it), journals only the new table, and is as crash-safe as the rest.
#[test]
fn a_growth_past_a_large_layer_leaves_it_in_place_and_journals_little() {
    const LAYER: u64 = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.oci.sif");
    let layer = images::GeneratedBlob::new(7, LAYER);
    images::write_image(&path, &[(layer.digest, LAYER)], &layer, 0);
    let old = std::fs::read(&path).unwrap();
    let before = plain(&old);
    assert_eq!(before.sif().free_slots(), 0);
    let layer_at = before.blob(&layer.digest).unwrap().offset;
    assert_eq!(
        layer_at,
        before.sif().header().data_offset,
        "the layer is in the way"
    );

    let op = attach_drop(new_signature(&before));
    let new = run_clean(&old, &op);
    let after = plain(&new);
    assert_eq!(
        after.blob(&layer.digest).unwrap().offset,
        layer_at,
        "not moved"
    );
    assert_eq!(after.verify_blobs().unwrap(), vec![]);
    let s = sweep("growth past an 8 MiB layer", &old, &new, &op, false);
    println!(
        "growth past an 8 MiB layer: {} crash points tried: {} old, {} new; journal \
         record {} bytes",
        s.crash_points, s.old, s.new, s.journal_bytes
    );
    assert!(s.old > 0 && s.new > 0, "{s:?}");
    assert!(
        s.journal_bytes < 64 << 10,
        "the layer is not journaled: {} bytes",
        s.journal_bytes
    );
}

/// The journal of a crash that happened after it was stored but before the image was
/// touched: the image bytes are the old ones.
fn stored_but_not_applied(old: &[u8], op: &Operation) -> Vec<u8> {
    let mem = Arc::new(MemStorage::new(old.to_vec()));
    let journal = MemJournal::default();
    let budget = Budget::new(false);
    let mut oci = open_journaled(
        Box::new(FaultyStorage {
            inner: mem.clone(),
            budget: budget.clone(),
        }),
        Box::new(FaultyJournal {
            inner: journal.clone(),
            budget: budget.clone(),
            largest: Arc::new(AtomicUsize::new(0)),
        }),
    );
    budget.set(1);
    assert!(op(&mut oci).is_err());
    assert_eq!(mem.to_vec(), old, "the first image write was refused");
    journal.contents().expect("a journal was stored")
}

/// Reopens `old` with `journal` beside it; returns the bytes and whether the journal is
/// still there.
fn reopen_with(old: &[u8], journal: Vec<u8>) -> (Vec<u8>, Option<Vec<u8>>) {
    let mem = Arc::new(MemStorage::new(old.to_vec()));
    let left = MemJournal::new(Some(journal));
    open_journaled(Box::new(mem.clone()), Box::new(left.clone()));
    (mem.to_vec(), left.contents())
}

#[test]
fn a_torn_or_corrupt_journal_is_discarded_and_the_image_stays_old() {
    let old = read_upstream(SIGNED1);
    let new = read_upstream(SIGNED2);
    let op = attach_drop(last_signature_drop(SIGNED2));
    let record = stored_but_not_applied(&old, &op);
    println!("journal record of an attach: {} bytes", record.len());
    assert!(record.len() < 64 << 10, "an attach journals kilobytes");

    // Whole, the record completes the attach.
    assert_eq!(reopen_with(&old, record.clone()), (new.clone(), None));

    let mut tried = 0;
    for cut in [
        0,
        1,
        16,
        record.len() / 2,
        record.len() - 32,
        record.len() - 1,
    ] {
        let (bytes, left) = reopen_with(&old, record[..cut].to_vec());
        assert_bytes_eq(&bytes, &old, &format!("journal torn at {cut}"));
        assert_eq!(left, None, "torn journal removed");
        tried += 1;
    }
    for at in [0, 20, record.len() / 3, record.len() - 40, record.len() - 1] {
        let mut damaged = record.clone();
        damaged[at] ^= 1;
        let (bytes, left) = reopen_with(&old, damaged);
        assert_bytes_eq(&bytes, &old, &format!("journal byte {at} corrupt"));
        assert_eq!(left, None, "corrupt journal removed");
        tried += 1;
    }
    assert_eq!(tried, 11);
}

#[test]
fn a_read_only_open_refuses_a_pending_update_and_ignores_a_torn_journal() {
    let old = read_upstream(SIGNED1);
    let op = attach_drop(last_signature_drop(SIGNED2));
    let record = stored_but_not_applied(&old, &op);

    let pending = MemJournal::new(Some(record.clone()));
    let err = SifImage::from_storage_with_journal(
        Box::new(MemStorage::new(old.clone())),
        Box::new(pending.clone()),
        OpenMode::ReadOnly,
    )
    .unwrap_err();
    assert!(
        matches!(err.kind(), SifError::PendingUpdate { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("read-write") && msg.contains("sifmount --recover"),
        "{msg}"
    );
    assert_eq!(
        pending.contents(),
        Some(record.clone()),
        "left for a writer"
    );

    let torn = MemJournal::new(Some(record[..record.len() / 2].to_vec()));
    let sif = SifImage::from_storage_with_journal(
        Box::new(MemStorage::new(old.clone())),
        Box::new(torn.clone()),
        OpenMode::ReadOnly,
    )
    .unwrap_or_else(|e| panic!("a torn journal stops a reader: {e}"));
    assert_eq!(sif.used_count(), plain(&old).sif().used_count());
    assert!(torn.contents().is_some(), "a reader removes nothing");
}

/// Writes past `limit` fail with ENOSPC, as on a full file system; extending with
/// `set_len` allocates nothing and succeeds.
struct FullDisk {
    inner: Arc<MemStorage>,
    limit: u64,
}

impl FullDisk {
    fn room(&self, offset: u64, len: u64) -> io::Result<()> {
        if len > 0 && offset + len > self.limit {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

impl Storage for FullDisk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.room(offset, buf.len() as u64)?;
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn copy_range(&self, src: u64, dst: u64, len: u64) -> io::Result<()> {
        self.room(dst, len)?;
        self.inner.copy_range(src, dst, len)
    }
    fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        self.room(offset, len)?;
        self.inner.zero_range(offset, len)
    }
}

/// Whether an error's chain holds an OS error with this number.
fn has_errno(e: &(dyn std::error::Error + 'static), errno: i32) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            == Some(errno)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[test]
fn a_full_disk_in_the_middle_of_an_update_returns_enospc_and_leaves_the_old_file() {
    for (what, old, make_op) in [
        (
            "attach",
            read_upstream(SIGNED1),
            Box::new(|_: &[u8]| -> Box<Operation> {
                Box::new(attach_drop(last_signature_drop(SIGNED2)))
            }) as Box<dyn Fn(&[u8]) -> Box<Operation>>,
        ),
        (
            "attach with table growth",
            read_upstream(NO_SPARE),
            Box::new(|old: &[u8]| -> Box<Operation> {
                Box::new(attach_drop(new_signature(&plain(old))))
            }),
        ),
    ] {
        let op = make_op(&old);
        let new = run_clean(&old, &op);
        assert!(new.len() > old.len(), "{what}: the update needs more room");
        // Room for some of the new bytes but not all: the update fails part-way.
        let limit = old.len() as u64 + 16;
        let mem = Arc::new(MemStorage::new(old.clone()));
        let journal = MemJournal::default();
        let mut oci = open_journaled(
            Box::new(FullDisk {
                inner: mem.clone(),
                limit,
            }),
            Box::new(journal.clone()),
        );
        let err = op(&mut oci).expect_err("the disk is full");
        assert!(err.contains("No space left on device"), "{what}: {err}");
        assert_bytes_eq(&mem.to_vec(), &old, &format!("{what}: after ENOSPC"));
        assert_eq!(journal.contents(), None, "{what}: journal left behind");
        // The image is usable afterwards: the same update succeeds once there is room.
        drop(oci);
        let mut oci = open_journaled(Box::new(mem.clone()), Box::new(journal.clone()));
        op(&mut oci).unwrap();
        assert_bytes_eq(&mem.to_vec(), &new, &format!("{what}: retried"));
    }
}

#[test]
fn enospc_reaches_the_caller_as_an_os_error() {
    let old = read_upstream(SIGNED1);
    let drop = last_signature_drop(SIGNED2);
    let mem = Arc::new(MemStorage::new(old.clone()));
    let mut oci = open_journaled(
        Box::new(FullDisk {
            inner: mem.clone(),
            limit: old.len() as u64,
        }),
        Box::new(MemJournal::default()),
    );
    let a = prepare(&oci, &drop).unwrap().unwrap();
    let err = attach(&mut oci, &a).unwrap_err();
    assert!(has_errno(&err, libc::ENOSPC), "{err}");
    assert_eq!(mem.to_vec(), old);
}

#[test]
fn a_journal_that_cannot_be_written_leaves_the_image_untouched() {
    struct NoRoom;
    impl JournalStore for NoRoom {
        fn load(&self) -> io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn store(&self, _: &[u8]) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn clear(&self) -> io::Result<()> {
            Ok(())
        }
    }
    let old = read_upstream(SIGNED1);
    let mem = Arc::new(MemStorage::new(old.clone()));
    let mut oci = open_journaled(Box::new(mem.clone()), Box::new(NoRoom));
    let err = attach_drop(last_signature_drop(SIGNED2))(&mut oci).unwrap_err();
    assert!(err.contains("update journal"), "{err}");
    assert_eq!(mem.to_vec(), old);
    // The in-memory state is the old one: a retry with a working journal gives signed2.
    assert_eq!(oci.sif().used_count(), plain(&old).sif().used_count());
}

/// Serves the blobs of `from`, except that `wrong` gets the bytes of another blob.
struct Corrupting<'a> {
    from: &'a OciSif,
    wrong: Digest,
    instead: Digest,
}

impl BlobSource for Corrupting<'_> {
    fn open_blob(&self, digest: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>> {
        let d = if *digest == self.wrong {
            &self.instead
        } else {
            digest
        };
        self.from.open_blob(d)
    }
}

/// An update that fails half-way (a blob from the source does not match its digest,
/// found only after the old objects were deleted and some new ones written) changes
/// neither the file nor the image in memory.
#[test]
fn an_update_failing_half_way_changes_nothing() {
    let old = read_upstream(SIGNED1);
    let signed2 = plain(&read_upstream(SIGNED2));
    let (_, m) = sig_manifest(&signed2);
    let source = Corrupting {
        from: &signed2,
        wrong: m.layers[1].digest,
        instead: m.config.digest,
    };
    let new_index = signed2.root_index_bytes().unwrap();
    for journaled in [true, false] {
        let mem = Arc::new(MemStorage::new(old.clone()));
        let sif = if journaled {
            SifImage::from_storage_with_journal(
                Box::new(mem.clone()),
                Box::new(MemJournal::default()),
                OpenMode::ReadWrite,
            )
        } else {
            SifImage::from_storage(Box::new(mem.clone()), OpenMode::ReadWrite)
        };
        let mut oci = OciSif::from_sif(sif.unwrap()).unwrap();
        let (header, slots) = (oci.sif().header().clone(), oci.sif().slots().to_vec());
        let err = oci.update_root_index(&new_index, &source).unwrap_err();
        assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
        assert_eq!(mem.to_vec(), old, "journaled: {journaled}");
        assert_eq!(oci.sif().header(), &header);
        assert_eq!(oci.sif().slots(), slots.as_slice());
        assert_eq!(
            oci.root_index_bytes().unwrap(),
            plain(&old).root_index_bytes().unwrap()
        );
        // The same object goes on to make the correct update.
        oci.update_root_index(&new_index, &signed2).unwrap();
        assert_bytes_eq(
            &mem.to_vec(),
            &read_upstream(SIGNED2),
            &format!("retry (journaled: {journaled})"),
        );
    }
}

/// Counts the syncs of the image and the journal operations of each commit.
struct Counting {
    inner: Arc<MemStorage>,
    syncs: Arc<AtomicUsize>,
}

impl Storage for Counting {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct CountingJournal {
    inner: MemJournal,
    stores: Arc<AtomicUsize>,
    clears: Arc<AtomicUsize>,
}

impl JournalStore for CountingJournal {
    fn load(&self) -> io::Result<Option<Vec<u8>>> {
        self.inner.load()
    }
    fn store(&self, bytes: &[u8]) -> io::Result<()> {
        self.stores.fetch_add(1, Ordering::SeqCst);
        self.inner.store(bytes)
    }
    fn clear(&self) -> io::Result<()> {
        self.clears.fetch_add(1, Ordering::SeqCst);
        self.inner.clear()
    }
}

/// One attach is one commit: one journal store, one image sync, one clear (with
/// `FileJournal`, whose store fsyncs the file and the directory and whose clear fsyncs the
/// directory, four fsyncs in all).
#[test]
fn an_attach_is_one_commit_with_one_image_sync() {
    let (syncs, stores, clears) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mem = Arc::new(MemStorage::new(read_upstream(SIGNED1)));
    let mut oci = open_journaled(
        Box::new(Counting {
            inner: mem.clone(),
            syncs: syncs.clone(),
        }),
        Box::new(CountingJournal {
            inner: MemJournal::default(),
            stores: stores.clone(),
            clears: clears.clone(),
        }),
    );
    // Opening found no journal and wrote nothing.
    assert_eq!(
        (syncs.load(Ordering::SeqCst), stores.load(Ordering::SeqCst)),
        (0, 0)
    );
    attach_drop(last_signature_drop(SIGNED2))(&mut oci).unwrap();
    assert_bytes_eq(&mem.to_vec(), &read_upstream(SIGNED2), "attach");
    let counts = |a: &AtomicUsize| a.load(Ordering::SeqCst);
    assert_eq!(
        (counts(&stores), counts(&syncs), counts(&clears)),
        (1, 1, 1)
    );
    // An update that changes nothing commits nothing.
    attach_drop(last_signature_drop(SIGNED2))(&mut oci).unwrap();
    assert_eq!(
        (counts(&stores), counts(&syncs), counts(&clears)),
        (1, 1, 1)
    );
}

/// On real files: a crash's leftovers beside the image stop a read-only open,
/// `SifImage::recover` completes the update, and a read-write open does it too.
#[test]
fn recovery_on_real_files() {
    let old = read_upstream(SIGNED1);
    let new = read_upstream(SIGNED2);
    let op = attach_drop(last_signature_drop(SIGNED2));
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.oci.sif");
    std::fs::write(&image, &old).unwrap();
    // Crash after the journal and two image writes.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .unwrap();
    let journal = MemJournal::default();
    let budget = Budget::new(false);
    let mut oci = open_journaled(
        Box::new(FaultyStorage {
            inner: Arc::new(file),
            budget: budget.clone(),
        }),
        Box::new(FaultyJournal {
            inner: journal.clone(),
            budget: budget.clone(),
            largest: Arc::new(AtomicUsize::new(0)),
        }),
    );
    budget.set(3);
    assert!(op(&mut oci).is_err());
    drop(oci);
    let (crashed, record) = (std::fs::read(&image).unwrap(), journal.contents().unwrap());
    assert!(crashed != old && crashed != new, "a half-applied update");

    let journal_path = journal_path(&image).unwrap();
    assert_eq!(
        journal_path.file_name().unwrap(),
        "image.oci.sif.sifmount-journal"
    );

    std::fs::write(&image, &crashed).unwrap();
    std::fs::write(&journal_path, &record).unwrap();
    let err = OciSif::open(&image, OpenMode::ReadOnly).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("sifmount --recover"), "{msg}");
    assert!(
        msg.contains(image.to_str().unwrap()),
        "names the image: {msg}"
    );
    assert_eq!(
        SifImage::recover(&image).unwrap(),
        RecoveryOutcome::RolledForward
    );
    assert!(!journal_path.exists());
    assert_bytes_eq(&std::fs::read(&image).unwrap(), &new, "recovered");
    assert_eq!(SifImage::recover(&image).unwrap(), RecoveryOutcome::Nothing);
    OciSif::open(&image, OpenMode::ReadOnly).unwrap();

    // A read-write open recovers by itself.
    std::fs::write(&image, &crashed).unwrap();
    std::fs::write(&journal_path, &record).unwrap();
    let oci = OciSif::open(&image, OpenMode::ReadWrite).unwrap();
    assert_eq!(oci.verify_blobs().unwrap(), vec![]);
    assert!(!journal_path.exists());
    assert_bytes_eq(&std::fs::read(&image).unwrap(), &new, "opened read-write");

    // A torn journal: discarded, the image untouched.
    std::fs::write(&image, &old).unwrap();
    std::fs::write(&journal_path, &record[..record.len() - 5]).unwrap();
    assert_eq!(
        SifImage::recover(&image).unwrap(),
        RecoveryOutcome::DiscardedTornJournal
    );
    assert!(!journal_path.exists());
    assert_eq!(std::fs::read(&image).unwrap(), old);
}

/// An attach on a real file: upstream's bytes, and no journal left beside it.
#[test]
fn a_real_file_attach_leaves_upstreams_bytes_and_no_journal() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.oci.sif");
    std::fs::write(&image, read_upstream(SIGNED1)).unwrap();
    let mut oci = OciSif::open(&image, OpenMode::ReadWrite).unwrap();
    attach_drop(last_signature_drop(SIGNED2))(&mut oci).unwrap();
    drop(oci);
    assert_bytes_eq(
        &std::fs::read(&image).unwrap(),
        &read_upstream(SIGNED2),
        "signed on disk",
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("image.oci.sif")]);
}

/// Writing a new image over an old one removes the old one's journal, which must never
/// be replayed onto the new bytes.
#[test]
fn a_new_image_drops_the_journal_of_the_file_it_replaces() {
    let record = stored_but_not_applied(
        &read_upstream(SIGNED1),
        &attach_drop(last_signature_drop(SIGNED2)),
    );
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("new.sif");
    let journal = journal_path(&image).unwrap();

    std::fs::write(&journal, &record).unwrap();
    let sif = SifImage::create_at_path(
        &image,
        &sifmount::sif::CreateOptions::deterministic(),
        Vec::new(),
    )
    .unwrap();
    drop(sif);
    assert!(
        !journal.exists(),
        "create_at_path removed the stale journal"
    );
    let created = std::fs::read(&image).unwrap();
    SifImage::open(&image, OpenMode::ReadWrite).unwrap();
    assert_eq!(std::fs::read(&image).unwrap(), created);

    std::fs::write(&journal, &record).unwrap();
    let layer = images::GeneratedBlob::new(3, 1000);
    images::write_image(&image, &[(layer.digest, 1000)], &layer, 8);
    assert!(
        !journal.exists(),
        "write_oci_sif_at_path removed the stale journal"
    );
    let written = std::fs::read(&image).unwrap();
    OciSif::open(&image, OpenMode::ReadWrite).unwrap();
    assert_eq!(std::fs::read(&image).unwrap(), written);
}
