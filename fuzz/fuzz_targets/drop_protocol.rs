//! The drop protocol of `/cosign` without a kernel: a sequence of the calls a mount makes
//! (create, write, flush, release, unlink, mkdir, rmdir, lookup, open, read, truncate,
//! and the `cp`, `cp -r` and `rm -r` sequences of them), decoded from the input and made
//! on a [`Volume`] over a fresh writable copy of a small OCI-SIF on a tmpfs.
//!
//! No call may panic. After the run the image must open and validate, its blobs must match
//! their digests, every committed entry must be listed in `/cosign`, and a remount must
//! show exactly the same committed entries.
//!
//! Input encoding (each value one byte unless said otherwise; a missing byte ends the
//! run): an opcode, then its operands. A directory is chosen among `/`, `/cosign` and the
//! directories in `/cosign`; a name is either from a table of names the protocol gives
//! meaning to, one already in the directory, or given inline (length, bytes); contents
//! are valid payloads, signatures and envelopes for the image, or inline bytes (two-byte
//! length). See `Ops` below.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sifmount::cosign;
use sifmount::oci::OciSif;
use sifmount::sif::OpenMode;
use sifmount::tree::{Ino, Kind, Tree, TreeError, ROOT, SUMMARY_JSON, SUMMARY_TEXT};
use sifmount::volume::{Volume, VolumeOptions};
use sifmount_fuzz::drop_ops::{contents, op, simple_signing, MAX_STAGED, NAMES, SIGNATURE};
use sifmount_fuzz::{demo, scratch_file, walk_volume};

/// Calls per run: enough for a few drops, commits and removals; bounded so that one input
/// never runs long.
const MAX_OPS: usize = 48;

fuzz_target!(init: { sifmount_fuzz::init("drop_protocol") }, |data: &[u8]| {
    let path = scratch_file("drop.oci.sif", template());
    let v = open(&path, true);
    let mut ops = Ops {
        v: &v,
        input: data,
        handles: Vec::new(),
    };
    for _ in 0..MAX_OPS {
        if ops.step().is_none() {
            break;
        }
    }
    for (ino, fh) in std::mem::take(&mut ops.handles) {
        v.release(ino, fh);
    }
    walk_volume(&v);

    let committed = entries_of(&path);
    let cosign_dir = v.lookup(ROOT, b"cosign").expect("an OCI-SIF has /cosign").ino;
    let listed: BTreeSet<String> = v
        .entries(cosign_dir)
        .expect("/cosign lists")
        .into_iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| e.name)
        .collect();
    for name in committed.keys() {
        assert!(listed.contains(name), "committed entry {name} is not listed in /cosign");
    }
    drop(v);

    let oci = OciSif::open(&path, OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("the image no longer opens after the drops: {e}"));
    let bad = oci.verify_blobs().expect("the blobs hash");
    assert!(bad.is_empty(), "blobs that do not match their digests: {bad:?}");
    drop(oci);
    let tree = Tree::open(&path).unwrap_or_else(|e| panic!("the image no longer mounts: {e}"));
    sifmount_fuzz::walk_tree(&tree);
    drop(tree);

    let again = open(&path, false);
    let cosign_dir = again.lookup(ROOT, b"cosign").expect("/cosign").ino;
    let relisted: BTreeSet<String> = again
        .entries(cosign_dir)
        .expect("/cosign lists")
        .into_iter()
        .map(|e| e.name)
        .collect();
    // Besides the entries, /cosign always holds its two summary files.
    let mut names: BTreeSet<String> = committed.keys().cloned().collect();
    names.extend([SUMMARY_TEXT.to_string(), SUMMARY_JSON.to_string()]);
    assert_eq!(relisted, names, "a remount shows exactly the committed entries");
    assert_eq!(entries_of(&path), committed, "a remount finds the same entries");
});

fn open(path: &std::path::Path, writable: bool) -> Volume {
    Volume::open(
        path,
        VolumeOptions {
            writable,
            max_staged_size: MAX_STAGED,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
    .0
}

/// Each committed entry's name with its payload digest and annotations.
fn entries_of(path: &std::path::Path) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let oci = OciSif::open(path, OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("the image no longer opens: {e}"));
    cosign::discover(&oci)
        .entries
        .into_iter()
        .map(|e| {
            let annotations = e.annotations();
            (e.name, (e.layer.digest.to_string(), annotations))
        })
        .collect()
}

/// The demo image with one signature already committed through the protocol, so that
/// runs can amend, remove and copy a committed entry as well as make new ones.
fn template() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let path = scratch_file("template.oci.sif", &demo().image);
        let v = open(&path, true);
        let cosign_dir = v.lookup(ROOT, b"cosign").expect("/cosign").ino;
        for (name, bytes) in [("t", simple_signing("0")), ("t.sig", SIGNATURE.to_vec())] {
            let (attr, fh) = v.create(cosign_dir, name.as_bytes()).expect("create");
            v.write_at(attr.ino, fh, 0, &bytes).expect("write");
            v.flush(attr.ino, fh)
                .expect("the template's signature commits");
            v.release(attr.ino, fh);
        }
        drop(v);
        let bytes = std::fs::read(&path).expect("read the template back");
        let _ = std::fs::remove_file(&path);
        bytes
    })
}

struct Ops<'a> {
    v: &'a Volume,
    input: &'a [u8],
    /// Open write handles: (inode, handle).
    handles: Vec<(Ino, u64)>,
}

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.input.split_first()?;
        self.input = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.input.len());
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        head
    }

    fn cosign(&self) -> Ino {
        self.v.lookup(ROOT, b"cosign").expect("/cosign").ino
    }

    /// `/`, `/cosign`, or a directory in `/cosign`.
    fn dir(&mut self) -> Option<Ino> {
        let b = self.byte()?;
        let cosign = self.cosign();
        Some(match b {
            0 => ROOT,
            1..=3 => cosign,
            _ => {
                let dirs: Vec<Ino> = self
                    .v
                    .entries(cosign)
                    .ok()?
                    .into_iter()
                    .filter(|e| e.kind == Kind::Dir)
                    .map(|e| e.ino)
                    .collect();
                if dirs.is_empty() {
                    cosign
                } else {
                    dirs[b as usize % dirs.len()]
                }
            }
        })
    }

    fn name(&mut self, dir: Ino) -> Option<Vec<u8>> {
        let b = self.byte()?;
        Some(match b {
            0xF0..=0xFF => {
                let n = self.byte()? as usize % 32;
                self.bytes(n).to_vec()
            }
            _ if b & 1 == 1 => {
                let listed = self.v.entries(dir).unwrap_or_default();
                if listed.is_empty() {
                    NAMES[0].as_bytes().to_vec()
                } else {
                    listed[(b >> 1) as usize % listed.len()]
                        .name
                        .clone()
                        .into_bytes()
                }
            }
            _ => NAMES[(b >> 1) as usize % NAMES.len()].as_bytes().to_vec(),
        })
    }

    fn content(&mut self) -> Option<Vec<u8>> {
        let b = self.byte()?;
        let table = contents();
        Some(if (b as usize) < table.len() * 16 {
            table[b as usize % table.len()].clone()
        } else {
            let lo = self.byte()? as usize;
            let hi = self.byte()? as usize;
            self.bytes((hi << 8 | lo) % 4096).to_vec()
        })
    }

    fn offset(&mut self) -> Option<u64> {
        Some(match self.byte()? {
            0..=0xEF => 0,
            0xF0..=0xFD => u64::from(self.byte()?) * 512,
            0xFE => MAX_STAGED - 1,
            0xFF => u64::MAX - 1,
        })
    }

    fn handle(&mut self) -> Option<Option<(Ino, u64)>> {
        let b = self.byte()?;
        Some(if self.handles.is_empty() {
            None
        } else {
            Some(self.handles[b as usize % self.handles.len()])
        })
    }

    /// One call; `None` when the input is used up.
    fn step(&mut self) -> Option<()> {
        let v = self.v;
        match self.byte()? % op::COUNT {
            op::CREATE => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                if let Ok((attr, fh)) = v.create(dir, &name) {
                    check_attr(v, attr.ino);
                    self.handles.push((attr.ino, fh));
                }
            }
            op::WRITE => {
                let h = self.handle()?;
                let offset = self.offset()?;
                let data = self.content()?;
                if let Some((ino, fh)) = h {
                    let _ = v.write_at(ino, fh, offset, &data);
                }
            }
            op::FLUSH => {
                if let Some((ino, fh)) = self.handle()? {
                    let _ = v.flush(ino, fh);
                }
            }
            op::RELEASE => {
                if let Some((ino, fh)) = self.handle()? {
                    v.release(ino, fh);
                    self.handles.retain(|&h| h != (ino, fh));
                }
            }
            op::UNLINK => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                let _ = v.unlink(dir, &name);
            }
            op::MKDIR => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                if let Ok(attr) = v.mkdir(dir, &name) {
                    check_attr(v, attr.ino);
                }
            }
            op::RMDIR => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                let _ = v.rmdir(dir, &name);
            }
            op::LOOKUP => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                if let Ok(attr) = v.lookup(dir, &name) {
                    check_attr(v, attr.ino);
                    let _ = v.may_write(attr.ino);
                    let _ = v.stable(attr.ino);
                    let _ = v.name_is_stable(dir, &name, attr.kind);
                }
            }
            op::READ => {
                let h = self.handle()?;
                let offset = self.offset()?;
                if let Some((ino, fh)) = h {
                    let mut buf = vec![0; 4096];
                    let _ = v.read_at(ino, fh, offset, &mut buf);
                }
            }
            op::OPEN => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                let flags = self.byte()?;
                if let Ok(attr) = v.lookup(dir, &name) {
                    if let Ok(o) = v.open_file(attr.ino, flags & 1 == 1, flags & 2 == 2) {
                        if o.fh != 0 {
                            self.handles.push((attr.ino, o.fh));
                        }
                    }
                }
            }
            op::TRUNCATE => {
                let h = self.handle()?;
                let size = self.offset()?;
                if let Some((ino, fh)) = h {
                    let _ = v.setattr(ino, Some(size), Some(fh));
                }
            }
            op::CP => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                let data = self.content()?;
                let _ = cp(v, dir, &name, &data);
            }
            op::RM_R => {
                let dir = self.dir()?;
                let name = self.name(dir)?;
                rm_r(v, dir, &name);
            }
            op::CP_R => {
                let dir = self.dir()?;
                let name = self.name(ROOT)?;
                cp_r(v, dir, &name);
            }
            _ => {
                walk_volume(v);
            }
        }
        Some(())
    }
}

fn check_attr(v: &Volume, ino: Ino) {
    if let Err(e) = v.attr(ino) {
        panic!("inode {ino} just made or found has no attributes: {e}");
    }
}

/// `cp SRC DIR/NAME`: open the file there (truncating) or create one, write, close.
fn cp(v: &Volume, dir: Ino, name: &[u8], data: &[u8]) -> Result<(), TreeError> {
    let (ino, fh) = match v.lookup(dir, name) {
        Ok(attr) => (attr.ino, v.open_file(attr.ino, true, true)?.fh),
        Err(_) => {
            let (attr, fh) = v.create(dir, name)?;
            (attr.ino, fh)
        }
    };
    let mut result = Ok(());
    for (i, chunk) in data.chunks(4096).enumerate() {
        if let Err(e) = v.write_at(ino, fh, (i * 4096) as u64, chunk) {
            result = Err(e);
            break;
        }
    }
    let flushed = v.flush(ino, fh);
    v.release(ino, fh);
    result.and(flushed)
}

/// `rm -r DIR/NAME`: every file of a directory unlinked, then the directory removed.
fn rm_r(v: &Volume, dir: Ino, name: &[u8]) {
    let Ok(attr) = v.lookup(dir, name) else {
        return;
    };
    if attr.kind != Kind::Dir {
        let _ = v.unlink(dir, name);
        return;
    }
    for e in v.entries(attr.ino).unwrap_or_default() {
        let _ = v.unlink(attr.ino, e.name.as_bytes());
    }
    let _ = v.rmdir(dir, name);
}

/// `cp -r SRC /cosign/NAME` where SRC is the directory `src` of this mount: mkdir, then
/// each regular file copied.
fn cp_r(v: &Volume, src: Ino, name: &[u8]) {
    let cosign = v.lookup(ROOT, b"cosign").expect("/cosign").ino;
    let Ok(files) = v.entries(src) else {
        return;
    };
    let Ok(new) = v.mkdir(cosign, name) else {
        return;
    };
    let mut buf = vec![0u8; MAX_STAGED as usize + 1];
    for e in files.into_iter().filter(|e| e.kind == Kind::File) {
        let Ok(n) = v.read_at(e.ino, 0, 0, &mut buf) else {
            continue;
        };
        let _ = cp(v, new.ino, e.name.as_bytes(), &buf[..n]);
    }
}
