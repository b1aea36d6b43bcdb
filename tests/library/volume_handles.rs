//! What readers hold across a commit, on a [`Volume`] without a kernel (the
//! real-mount stress test is tests/mount/concurrency_mount.rs): an attach replaces
//! `/index.json` and the signature image's documents, so their inodes leave the tree.
//! A file opened before keeps reading what it opened; an inode the kernel looked up
//! before and opens after opens what is at its path now; a listing that takes several
//! calls shows every name that was there all along exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::lookup::resolve;
use crate::common::{self, images};
use sifmount::sif::Digest;
use sifmount::tree::{Ino, Kind, TreeError, ROOT};
use sifmount::volume::{Volume, VolumeOptions};

const SIGNATURE: &str = "c2lmbW91bnQgdm9sdW1lIGhhbmRsZXMgdGVzdA==";

struct Demo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    target: Digest,
}

fn demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.oci.sif");
    // One spare descriptor: the second attach grows the table and moves objects too.
    let written = images::write_demo_image_with_spare(&path, 1);
    Demo {
        _dir: dir,
        path,
        target: written.manifest,
    }
}

fn open(path: &Path) -> Volume {
    Volume::open(
        path,
        VolumeOptions {
            writable: true,
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

/// Everything a handle reads, from offset 0, in reads of 7 bytes (several calls, as the
/// kernel makes them).
fn read_handle(v: &Volume, ino: Ino, fh: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut buf = [0u8; 7];
        let n = v.read_at(ino, fh, out.len() as u64, &mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn read_path(v: &Volume, path: &str) -> Vec<u8> {
    let ino = resolve(v, path).unwrap();
    let fh = v.open_file(ino, false, false).unwrap().fh;
    let bytes = read_handle(v, ino, fh);
    v.flush(ino, fh).unwrap();
    v.release(ino, fh);
    bytes
}

/// Attaches signature `n` the way `cp p p.sig /cosign/` does.
fn attach(v: &Volume, target: &Digest, n: usize) {
    let cosign = resolve(v, "cosign").unwrap();
    let payload = common::simple_signing(target, &format!(r#"{{"n":{n}}}"#));
    for (name, bytes) in [
        (format!("p{n}"), payload),
        (format!("p{n}.sig"), SIGNATURE.as_bytes().to_vec()),
    ] {
        let (a, fh) = v.create(cosign, name.as_bytes()).unwrap();
        v.write_at(a.ino, fh, 0, &bytes).unwrap();
        v.flush(a.ino, fh).unwrap();
        v.release(a.ino, fh);
    }
}

/// The signature image's manifest, as index.json names it.
fn signature_manifest(v: &Volume) -> Digest {
    let index = sifmount::oci::Index::parse(&read_path(v, "index.json")).unwrap();
    index
        .entries()
        .iter()
        .find(|e| e.ref_name().is_some_and(|n| n.ends_with(".sig")))
        .expect("a signature image")
        .digest
}

#[test]
fn an_open_file_reads_what_it_opened_across_commits() {
    let d = demo();
    let v = open(&d.path);
    attach(&v, &d.target, 1);
    let index = resolve(&v, "index.json").unwrap();
    let manifest = signature_manifest(&v);
    let manifest_ino = resolve(&v, &format!("blobs/sha256/{}", manifest.hex())).unwrap();
    let before = read_path(&v, "index.json");
    let manifest_before = read_path(&v, &format!("blobs/sha256/{}", manifest.hex()));
    let fh = v.open_file(index, false, false).unwrap().fh;
    let manifest_fh = v.open_file(manifest_ino, false, false).unwrap().fh;
    assert_ne!(fh, 0, "a read-write volume hands out handles for reading");

    // Two more attaches (the second grows the table): both files leave the tree.
    attach(&v, &d.target, 2);
    attach(&v, &d.target, 3);
    assert_ne!(
        resolve(&v, "index.json").unwrap(),
        index,
        "index.json was replaced"
    );
    assert!(
        resolve(&v, &format!("blobs/sha256/{}", manifest.hex())).is_err(),
        "the first signature manifest was removed"
    );
    assert_ne!(read_path(&v, "index.json"), before);

    assert_eq!(read_handle(&v, index, fh), before, "the open index.json");
    assert_eq!(
        read_handle(&v, manifest_ino, manifest_fh),
        manifest_before,
        "the open manifest, removed from the image since"
    );
    assert_eq!(
        v.attr_for(index, Some(fh)).unwrap().size,
        before.len() as u64,
        "fstat of the handle"
    );
    v.release(index, fh);
    v.release(manifest_ino, manifest_fh);
}

#[test]
fn an_inode_replaced_before_its_open_opens_what_is_at_its_path() {
    let d = demo();
    let v = open(&d.path);
    attach(&v, &d.target, 1);
    // What the kernel has after a lookup...
    let index = resolve(&v, "index.json").unwrap();
    let manifest = signature_manifest(&v);
    let manifest_ino = resolve(&v, &format!("blobs/sha256/{}", manifest.hex())).unwrap();
    // ...when a commit comes before the open (or stat) it was for.
    attach(&v, &d.target, 2);
    let now = read_path(&v, "index.json");

    let a = v.attr_for(index, None).unwrap();
    assert_eq!(a.size, now.len() as u64, "stat shows the index now there");
    assert_eq!(a.ino, index, "under the number asked about");
    assert_eq!(a.kind, Kind::File);
    let opened = v.open_file(index, false, false).unwrap();
    assert!(
        !opened.cacheable,
        "its pages are not the old inode's: no page cache"
    );
    assert_eq!(read_handle(&v, index, opened.fh), now);
    v.release(index, opened.fh);

    // A removed blob stays removed.
    assert!(matches!(
        v.open_file(manifest_ino, false, false),
        Err(TreeError::NoInode(_))
    ));
    assert!(matches!(
        v.attr_for(manifest_ino, None),
        Err(TreeError::NoInode(_))
    ));
}

/// Lists `dir` through a handle, two names per call, with `between(call)` run between
/// calls; returns the names with their inodes.
fn list_in_calls(v: &Volume, dir: Ino, mut between: impl FnMut(usize)) -> Vec<(String, Ino)> {
    let fh = v.open_dir(dir, false).unwrap();
    assert_ne!(fh, 0);
    let mut out = Vec::new();
    let mut offset = 0;
    let mut call = 0;
    loop {
        let mut got = 0;
        v.list_from(dir, fh, offset, |e, next, attr, _| {
            assert_eq!(e.ino, attr.ino);
            out.push((e.name.clone(), e.ino));
            offset = next;
            got += 1;
            got == 2
        })
        .unwrap();
        if got == 0 {
            break;
        }
        between(call);
        call += 1;
    }
    v.release_dir(fh);
    out
}

#[test]
fn a_listing_in_several_calls_shows_every_lasting_name_once() {
    let d = demo();
    let v = open(&d.path);
    attach(&v, &d.target, 1);
    let blobs = resolve(&v, "blobs/sha256").unwrap();
    let before: Vec<String> = v
        .entries(blobs)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut n = 1;
    // An attach between every two calls adds names before and after the position
    // reached and removes others.
    let listed = list_in_calls(&v, blobs, |_| {
        n += 1;
        attach(&v, &d.target, n);
    });
    let after: Vec<String> = v
        .entries(blobs)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _) in &listed {
        *count.entry(name).or_default() += 1;
    }
    for name in before.iter().filter(|n| after.contains(n)) {
        assert_eq!(
            count.get(name.as_str()).copied().unwrap_or(0),
            1,
            "{name}, there all along, listed once: {listed:?}"
        );
    }
    assert!(count.values().all(|&c| c == 1), "no name twice: {listed:?}");
    assert!(n > 3, "commits came between the calls");

    // The root: index.json is replaced between calls, and shows as the one now there.
    let listed = list_in_calls(&v, ROOT, |call| {
        if call == 0 {
            n += 1;
            attach(&v, &d.target, n);
        }
    });
    let index: Vec<&(String, Ino)> = listed.iter().filter(|(n, _)| n == "index.json").collect();
    assert_eq!(index.len(), 1, "{listed:?}");
    assert_eq!(index[0].1, resolve(&v, "index.json").unwrap());
}
