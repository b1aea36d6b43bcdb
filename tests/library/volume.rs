//! The drop protocol of `/cosign` without a kernel (the man page, ATTACHING): the calls the mount
//! makes for `cp`, `cp -r` and `rm -r`, made straight on a [`Volume`], with the image
//! checked byte for byte against the upstream files afterwards.

use std::path::Path;

use crate::common::lookup::{names, resolve};
use crate::common::{assert_bytes_eq, upstream, upstream_signature_text, writable_temp_copy};
use sifmount::sif::Digest;
use sifmount::tree::{Ino, Kind, TreeError, ROOT};
use sifmount::volume::{Volume, VolumeOptions};

fn open(path: &Path, writable: bool) -> Volume {
    Volume::open(
        path,
        VolumeOptions {
            writable,
            max_staged_size: 64 << 10,
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

fn read_all(v: &Volume, path: &str) -> Vec<u8> {
    let ino = resolve(v, path).unwrap();
    let size = v.attr(ino).unwrap().size as usize;
    let mut buf = vec![0; size];
    let n = v.read_at(ino, 0, 0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// What `cp SRC DIR/NAME` does for a new file: create, write, close (flush, release).
fn cp_new(v: &Volume, dir: &str, name: &str, bytes: &[u8]) -> Result<(), TreeError> {
    let parent = resolve(v, dir).unwrap();
    let (attr, fh) = v.create(parent, name.as_bytes())?;
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        v.write_at(attr.ino, fh, (i * 4096) as u64, chunk)?;
    }
    let result = v.flush(attr.ino, fh);
    v.release(attr.ino, fh);
    result
}

/// What `cp SRC DIR/NAME` does: a lookup, then open the file that is there or create one.
fn cp(v: &Volume, dir: &str, name: &str, bytes: &[u8]) -> Result<(), TreeError> {
    match resolve(v, &format!("{dir}/{name}")) {
        Ok(_) => cp_over(v, &format!("{dir}/{name}"), bytes),
        Err(_) => cp_new(v, dir, name, bytes),
    }
}

/// What `cp SRC PATH` does for an existing file: open with O_TRUNC, write, close.
fn cp_over(v: &Volume, path: &str, bytes: &[u8]) -> Result<(), TreeError> {
    let ino = resolve(v, path).unwrap();
    let opened = v.open_file(ino, true, true)?;
    v.write_at(ino, opened.fh, 0, bytes)?;
    let result = v.flush(ino, opened.fh);
    v.release(ino, opened.fh);
    result
}

fn target13_of(v: &Volume) -> String {
    names(v, "cosign")
        .into_iter()
        .find(|n| n.starts_with("sig-"))
        .map(|n| n[4..17].to_string())
        .unwrap_or_default()
}

#[test]
fn payload_then_signature_commits_at_the_second_close_byte_for_byte() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");

    cp_new(&v, "cosign", "p.json", &payload).unwrap();
    assert_eq!(names(&v, "cosign"), ["p.json"], "pending until signed");
    assert_eq!(read_all(&v, "cosign/p.json"), payload);
    cp_new(&v, "cosign", "p.json.sig", format!("{sig}\n").as_bytes()).unwrap();

    let listing = names(&v, "cosign");
    let entry = listing
        .iter()
        .find(|n| n.starts_with("sig-"))
        .unwrap()
        .clone();
    assert_eq!(listing.len(), 3, "{listing:?}");
    assert!(listing.contains(&"p.json".to_string()) && listing.contains(&"p.json.sig".to_string()));
    let alias = resolve(&v, "cosign/p.json").unwrap();
    assert_eq!(v.attr(alias).unwrap().kind, Kind::Symlink);
    assert_eq!(v.readlink(alias).unwrap(), format!("{entry}/payload"));
    assert_eq!(
        read_all(&v, &format!("cosign/{entry}/signature")),
        sig.as_bytes()
    );
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &std::fs::read(upstream("generated/squashfs-image.signed1.oci.sif")).unwrap(),
        "after the attach",
    );
}

#[test]
fn signature_first_and_a_second_signature_give_signed2() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    for (i, step) in ["signed1", "signed2"].into_iter().enumerate() {
        let (payload, sig) =
            upstream_signature_text(&format!("generated/squashfs-image.{step}.oci.sif"));
        let name = format!("s{i}");
        cp_new(&v, "cosign", &format!("{name}.sig"), sig.as_bytes()).unwrap();
        cp_new(&v, "cosign", &name, &payload).unwrap();
    }
    let t = target13_of(&v);
    assert_eq!(t.len(), 13);
    let entries: Vec<String> = names(&v, "cosign")
        .into_iter()
        .filter(|n| n.starts_with("sig-"))
        .collect();
    assert_eq!(entries, [format!("sig-{t}-1"), format!("sig-{t}-2")]);
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &std::fs::read(upstream("generated/squashfs-image.signed2.oci.sif")).unwrap(),
        "after two attaches",
    );
}

#[test]
fn unchanged_inodes_keep_their_numbers_and_changed_files_get_new_ones() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    let blobs_before: Vec<(String, Ino)> = v
        .entries(resolve(&v, "blobs/sha256").unwrap())
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.ino))
        .collect();
    let index_before = resolve(&v, "index.json").unwrap();
    let old_index = read_all(&v, "index.json");
    let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    cp_new(&v, "cosign", "p", &payload).unwrap();
    cp_new(&v, "cosign", "p.sig", sig.as_bytes()).unwrap();

    let index_after = resolve(&v, "index.json").unwrap();
    assert_ne!(
        index_before, index_after,
        "the root index changed: a new inode"
    );
    assert!(
        v.attr(index_before).is_err(),
        "the old root index inode is gone"
    );
    assert_ne!(read_all(&v, "index.json"), old_index);
    let blobs_after = v.entries(resolve(&v, "blobs/sha256").unwrap()).unwrap();
    for (name, ino) in &blobs_before {
        if let Some(e) = blobs_after.iter().find(|e| &e.name == name) {
            assert_eq!(e.ino, *ino, "blob {name} kept its inode");
        }
    }
    assert_eq!(
        blobs_after.len(),
        blobs_before.len() + 3,
        "payload, config, manifest"
    );
    assert_eq!(resolve(&v, "").unwrap(), ROOT);
}

#[test]
fn a_refused_drop_stays_visible_with_its_reason_and_can_be_fixed() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let before = std::fs::read(&path).unwrap();
    let v = open(&path, true);
    let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    cp_new(&v, "cosign", "p", &payload).unwrap();
    let e = cp_new(&v, "cosign", "p.sig", b"not base64!!").unwrap_err();
    assert!(matches!(e, TreeError::Rejected(_)), "{e:?}");
    assert_eq!(names(&v, "cosign"), ["p", "p.error", "p.sig"]);
    let reason = String::from_utf8(read_all(&v, "cosign/p.error")).unwrap();
    assert!(
        reason.contains("cosign/p.sig") && reason.contains("base64"),
        "{reason}"
    );
    assert_bytes_eq(&std::fs::read(&path).unwrap(), &before, "nothing committed");

    // Rewriting the bad file with a good signature commits the entry.
    cp_over(&v, "cosign/p.sig", sig.as_bytes()).unwrap();
    let listing = names(&v, "cosign");
    assert!(listing.iter().any(|n| n.starts_with("sig-")), "{listing:?}");
    assert!(!listing.contains(&"p.error".to_string()), "{listing:?}");
}

#[test]
fn oversized_files_fail_at_the_write() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    let e = cp_new(&v, "cosign", "big", &vec![b'{'; 70 << 10]).unwrap_err();
    assert!(matches!(e, TreeError::TooLarge(_)), "{e:?}");
    assert!(e.to_string().contains("cosign/big"), "{e}");
}

#[test]
fn copying_an_entry_directory_in_any_file_order_commits_once() {
    // The source entry, as a mount of the signed file shows it.
    let src = open(&upstream("generated/squashfs-image.signed1.oci.sif"), false);
    let entry = names(&src, "cosign")
        .into_iter()
        .find(|n| n.starts_with("sig-"))
        .unwrap();
    let files: Vec<(String, Vec<u8>)> = names(&src, &format!("cosign/{entry}"))
        .into_iter()
        .map(|f| {
            let bytes = read_all(&src, &format!("cosign/{entry}/{f}"));
            (f, bytes)
        })
        .collect();
    for reversed in [false, true] {
        let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
        let v = open(&path, true);
        let dir = resolve(&v, "cosign").unwrap();
        v.mkdir(dir, entry.as_bytes()).unwrap();
        let mut order = files.clone();
        if reversed {
            order.reverse();
        }
        for (name, bytes) in &order {
            cp(&v, &format!("cosign/{entry}"), name, bytes)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(
            names(&v, "cosign"),
            std::slice::from_ref(&entry),
            "the copy is the canonical entry"
        );
        drop(v);
        assert_bytes_eq(
            &std::fs::read(&path).unwrap(),
            &std::fs::read(upstream("generated/squashfs-image.signed1.oci.sif")).unwrap(),
            &format!("cp -r (reversed: {reversed})"),
        );
    }
}

#[test]
fn removing_an_entry_takes_unlinks_then_rmdir() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.signed2.oci.sif");
    let v = open(&path, true);
    let t = target13_of(&v);
    let entry = format!("sig-{t}-2");
    let cosign = resolve(&v, "cosign").unwrap();
    let dir = resolve(&v, &format!("cosign/{entry}")).unwrap();
    let e = v.rmdir(cosign, entry.as_bytes()).unwrap_err();
    assert!(matches!(e, TreeError::NotEmpty(_)), "{e:?}");
    for f in names(&v, &format!("cosign/{entry}")) {
        v.unlink(dir, f.as_bytes()).unwrap();
    }
    assert!(names(&v, &format!("cosign/{entry}")).is_empty());
    v.rmdir(cosign, entry.as_bytes()).unwrap();
    assert_eq!(names(&v, "cosign"), [format!("sig-{t}-1")]);
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &std::fs::read(upstream("generated/squashfs-image.signed1.oci.sif")).unwrap(),
        "after rm -r of the second signature",
    );
}

/// A committed entry takes its own bytes again; other bytes are a copy of another entry
/// (the man page, ATTACHING), judged as a drop: here refused, saying why in the entry's
/// `error` file, with the entry's own files and the image unchanged.
#[test]
fn committed_files_take_their_own_bytes_and_judge_others_as_a_copy() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.signed1.oci.sif");
    let v = open(&path, true);
    let t = target13_of(&v);
    let entry = format!("cosign/sig-{t}-1");
    let payload = read_all(&v, &format!("{entry}/payload"));
    cp_over(&v, &format!("{entry}/payload"), &payload).unwrap();
    assert!(!names(&v, &entry).contains(&"error".to_string()));
    let e = cp_over(&v, &format!("{entry}/payload"), b"{}").unwrap_err();
    assert!(
        matches!(e, TreeError::Rejected(_)) && e.to_string().contains("unknown payload format"),
        "{e:?}"
    );
    // The copy under way takes the next file too, and stays refused.
    let e = cp_over(&v, &format!("{entry}/signature"), b"MEUCIQ==").unwrap_err();
    assert!(matches!(e, TreeError::Rejected(_)), "{e:?}");
    let error = read_all(&v, &format!("{entry}/error"));
    let error = String::from_utf8(error).unwrap();
    assert!(error.contains("unknown payload format"), "{error}");
    assert_eq!(read_all(&v, &format!("{entry}/payload")), payload);
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &std::fs::read(upstream("generated/squashfs-image.signed1.oci.sif")).unwrap(),
        "after refused rewrites",
    );
}

#[test]
fn read_only_volumes_refuse_every_change() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.signed1.oci.sif");
    let v = open(&path, false);
    let cosign = resolve(&v, "cosign").unwrap();
    assert!(matches!(v.create(cosign, b"x"), Err(TreeError::ReadOnly)));
    assert!(matches!(v.mkdir(cosign, b"d"), Err(TreeError::ReadOnly)));
    let entry = names(&v, "cosign")[0].clone();
    assert!(matches!(
        v.rmdir(cosign, entry.as_bytes()),
        Err(TreeError::ReadOnly)
    ));
    let payload = resolve(&v, &format!("cosign/{entry}/payload")).unwrap();
    assert!(matches!(
        v.open_file(payload, true, false),
        Err(TreeError::ReadOnly)
    ));
}

#[test]
fn writes_outside_cosign_are_read_only_even_when_writable() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    assert!(matches!(v.create(ROOT, b"x"), Err(TreeError::ReadOnly)));
    assert!(matches!(v.mkdir(ROOT, b"x"), Err(TreeError::ReadOnly)));
    let index = resolve(&v, "index.json").unwrap();
    assert!(matches!(
        v.open_file(index, true, true),
        Err(TreeError::ReadOnly)
    ));
    assert!(matches!(
        v.unlink(ROOT, b"index.json"),
        Err(TreeError::ReadOnly)
    ));
}

#[test]
fn names_of_a_committed_drop_can_be_reused_once_removed() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    let cosign = resolve(&v, "cosign").unwrap();
    for step in ["signed1", "signed2"] {
        let (payload, sig) =
            upstream_signature_text(&format!("generated/squashfs-image.{step}.oci.sif"));
        cp_new(&v, "cosign", "p", &payload).unwrap();
        cp_new(&v, "cosign", "p.sig", sig.as_bytes()).unwrap();
        // `rm p p.sig`: the names go, the signature stays.
        v.unlink(cosign, b"p").unwrap();
        v.unlink(cosign, b"p.sig").unwrap();
    }
    let t = target13_of(&v);
    assert_eq!(
        names(&v, "cosign"),
        [format!("sig-{t}-1"), format!("sig-{t}-2")]
    );
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &std::fs::read(upstream("generated/squashfs-image.signed2.oci.sif")).unwrap(),
        "two drops under the same names",
    );
}

#[test]
fn a_file_refused_for_its_size_keeps_that_reason_until_rewritten() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    let cosign = resolve(&v, "cosign").unwrap();
    let (attr, fh) = v.create(cosign, b"big").unwrap();
    v.write_at(attr.ino, fh, 0, b"{").unwrap();
    let e = v
        .write_at(attr.ino, fh, 1, &vec![b' '; 64 << 10])
        .unwrap_err();
    assert!(matches!(e, TreeError::TooLarge(_)), "{e:?}");
    let e = v.flush(attr.ino, fh).unwrap_err();
    assert!(
        matches!(e, TreeError::TooLarge(_)),
        "close says why too: {e:?}"
    );
    v.release(attr.ino, fh);
    let reason = String::from_utf8(read_all(&v, "cosign/big.error")).unwrap();
    assert!(reason.contains("size limit"), "{reason}");
    // Rewritten within the limit, the file is judged on its content again.
    let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    cp_over(&v, "cosign/big", &payload).unwrap();
    cp_new(&v, "cosign", "big.sig", sig.as_bytes()).unwrap();
    assert!(names(&v, "cosign").iter().any(|n| n.starts_with("sig-")));
}

#[test]
fn a_committed_directory_shows_what_was_written_and_rm_r_of_it_removes_the_signature() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let before = std::fs::read(&path).unwrap();
    let v = open(&path, true);
    let cosign = resolve(&v, "cosign").unwrap();
    let mine = v.mkdir(cosign, b"mine").unwrap().ino;
    let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    cp_new(&v, "cosign/mine", "signature", sig.as_bytes()).unwrap();
    cp_new(&v, "cosign/mine", "payload", &payload).unwrap();
    let t = target13_of(&v);
    assert_eq!(
        names(&v, "cosign"),
        ["mine".to_string(), format!("sig-{t}-1")]
    );
    // cp -r goes on creating files after the commit; none of them exists yet.
    assert_eq!(names(&v, "cosign/mine"), ["payload", "signature"]);
    cp_new(&v, "cosign/mine", "media-type", b"ignored\n").unwrap();
    let e = cp_new(
        &v,
        "cosign/mine",
        "annotations",
        br#"{"dev.cosignproject.cosign/signature":"AAAA"}"#,
    )
    .unwrap_err();
    assert!(
        matches!(e, TreeError::Denied(_)),
        "a changed signature: {e:?}"
    );
    assert_eq!(
        names(&v, "cosign/mine"),
        ["media-type", "payload", "signature"]
    );
    for f in names(&v, "cosign/mine") {
        v.unlink(mine, f.as_bytes()).unwrap();
    }
    v.rmdir(cosign, b"mine").unwrap();
    assert!(names(&v, "cosign").is_empty(), "{:?}", names(&v, "cosign"));
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &before,
        "the signature went with it",
    );
}

#[test]
fn a_second_writer_is_refused_and_readers_are_not() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let first = open(&path, true);
    let e = Volume::open(
        &path,
        VolumeOptions {
            writable: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("already open for writing"), "{e}");
    let reader = open(&path, false);
    assert!(!reader.writable());
    drop(first);
    open(&path, true);
}

#[test]
fn a_change_made_behind_the_mount_fails_the_update_meeting_it_and_later_ones_build_on_it() {
    // Another program appends to the image (a length change), or rewrites a header byte
    // (the modification time) in place.
    for (what, change) in [
        (
            "length",
            Box::new(|f: &std::fs::File| f.set_len(f.metadata().unwrap().len() + 1))
                as Box<dyn Fn(&std::fs::File) -> std::io::Result<()>>,
        ),
        (
            "header",
            Box::new(|f: &std::fs::File| std::os::unix::fs::FileExt::write_all_at(f, &[1], 72)),
        ),
    ] {
        let (_d, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
        let v = open(&path, true);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        change(&file).unwrap();
        let changed = std::fs::read(&path).unwrap();
        let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
        cp_new(&v, "cosign", "p", &payload).unwrap();
        let e = cp_new(&v, "cosign", "p.sig", sig.as_bytes()).unwrap_err();
        assert!(matches!(e, TreeError::Stale(_)), "{what}: {e:?}");
        let reason = e.to_string();
        assert!(reason.contains("changed by another program"), "{reason}");
        assert!(reason.contains("nothing was written"), "{reason}");
        assert!(reason.contains("do it again"), "{reason}");
        assert_bytes_eq(
            &std::fs::read(&path).unwrap(),
            &changed,
            &format!("{what}: not written over"),
        );
        assert!(
            names(&v, "cosign").iter().any(|n| n.ends_with(".error")),
            "{what}"
        );

        // The volume now stands on the changed image: copying the signature again
        // attaches it there, keeping what the other program wrote.
        cp_over(&v, "cosign/p.sig", sig.as_bytes()).unwrap();
        let entries: Vec<String> = names(&v, "cosign")
            .into_iter()
            .filter(|n| n.starts_with("sig-"))
            .collect();
        assert_eq!(entries.len(), 1, "{what}: {entries:?}");
        drop(v);
        let after = std::fs::read(&path).unwrap();
        assert!(
            after.len() > changed.len(),
            "{what}: the signature was appended"
        );
        let reader = open(&path, false);
        assert_eq!(
            names(&reader, "cosign")
                .into_iter()
                .filter(|n| n.starts_with("sig-"))
                .count(),
            1,
            "{what}: a new reader sees the signature"
        );
        for blob in names(&reader, "blobs/sha256") {
            let bytes = read_all(&reader, &format!("blobs/sha256/{blob}"));
            assert_eq!(Digest::of(&bytes).hex(), blob, "{what}: blob {blob}");
        }
    }
}

#[test]
fn staged_files_never_share_an_inode_with_the_image_tree() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path, true);
    let mut tree_inos = std::collections::HashSet::new();
    let mut todo = vec![ROOT];
    while let Some(dir) = todo.pop() {
        tree_inos.insert(dir);
        for e in v.entries(dir).unwrap() {
            tree_inos.insert(e.ino);
            if e.kind == Kind::Dir {
                todo.push(e.ino);
            }
        }
    }
    let cosign = resolve(&v, "cosign").unwrap();
    let (staged, fh) = v.create(cosign, b"p").unwrap();
    v.release(staged.ino, fh);
    let dir = v.mkdir(cosign, b"d").unwrap();
    for ino in [staged.ino, dir.ino] {
        assert!(
            !tree_inos.contains(&ino),
            "inode {ino} is already in the tree"
        );
    }
}

fn open_limited(path: &Path, files: usize, size: u64, total: u64) -> Volume {
    Volume::open(
        path,
        VolumeOptions {
            writable: true,
            max_staged_size: size,
            max_staged_files: files,
            max_staged_total: total,
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

#[test]
fn the_number_of_staged_files_and_directories_is_bounded() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let before = std::fs::read(&path).unwrap();
    let v = open_limited(&path, 3, 64 << 10, 1 << 20);
    let cosign = resolve(&v, "cosign").unwrap();
    let (payload, _) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    // Payloads without signatures stay staged: each one counts.
    cp_new(&v, "cosign", "a", &payload).unwrap();
    cp_new(&v, "cosign", "b", &payload).unwrap();
    v.mkdir(cosign, b"d").unwrap();
    let e = v.create(cosign, b"c").unwrap_err();
    assert!(matches!(e, TreeError::NoSpace(_)), "{e:?}");
    assert!(
        e.to_string().contains("cosign/c") && e.to_string().contains("max_staged_files"),
        "{e}"
    );
    let e = v.mkdir(cosign, b"e").unwrap_err();
    assert!(matches!(e, TreeError::NoSpace(_)), "{e:?}");
    // Inside a staged directory too: the limit is on what memory holds, wherever.
    let e = cp_new(&v, "cosign/d", "payload", &payload).unwrap_err();
    assert!(matches!(e, TreeError::NoSpace(_)), "{e:?}");
    assert_eq!(names(&v, "cosign"), ["a", "b", "d"], "nothing half-made");

    // Removing one makes room for one.
    v.unlink(cosign, b"a").unwrap();
    cp_new(&v, "cosign", "c", &payload).unwrap();
    assert!(v.create(cosign, b"x").is_err());
    v.rmdir(cosign, b"d").unwrap();
    v.mkdir(cosign, b"e").unwrap();
    drop(v);
    assert_bytes_eq(&std::fs::read(&path).unwrap(), &before, "nothing committed");
}

#[test]
fn the_bytes_staged_together_are_bounded_and_a_refused_file_can_be_rewritten() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open_limited(&path, 100, 64 << 10, 100 << 10);
    let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    // A payload padded with JSON whitespace stays a payload waiting for its signature.
    let mut filler = payload.clone();
    filler.resize(60 << 10, b' ');
    cp_new(&v, "cosign", "filler", &filler).unwrap();
    // 60K + 60K is over the 100K total; each alone is under the 64K per file.
    let e = cp_new(&v, "cosign", "p", &filler).unwrap_err();
    assert!(matches!(e, TreeError::NoSpace(_)), "{e:?}");
    assert!(
        e.to_string().contains("cosign/p") && e.to_string().contains("max_staged_total"),
        "{e}"
    );
    // The file lost a write: it keeps that reason (ENOSPC, not EFBIG) until rewritten.
    let reason = String::from_utf8(read_all(&v, "cosign/p.error")).unwrap();
    assert!(reason.contains("max_staged_total"), "{reason}");
    assert!(read_all(&v, "cosign/p").len() < 60 << 10);
    // Nothing more fits, not even a signature of a few hundred bytes.
    let e = cp_new(&v, "cosign", "p.sig", sig.as_bytes()).unwrap_err();
    assert!(matches!(e, TreeError::NoSpace(_)), "{e:?}");
    assert!(!names(&v, "cosign").iter().any(|n| n.starts_with("sig-")));
    // truncate(2) counts as much as write(2).
    let cosign = resolve(&v, "cosign").unwrap();
    let (t, fh) = v.create(cosign, b"t").unwrap();
    let e = v.setattr(t.ino, Some(60 << 10), Some(fh)).unwrap_err();
    assert!(matches!(e, TreeError::NoSpace(_)), "{e:?}");
    v.release(t.ino, fh);
    v.unlink(cosign, b"t").unwrap();

    // Room made, the rewritten payload commits with its signature.
    v.unlink(cosign, b"filler").unwrap();
    // Each refused file must be rewritten: the first rewrite still hears of the other.
    let e = cp_over(&v, "cosign/p.sig", sig.as_bytes()).unwrap_err();
    assert!(e.to_string().starts_with("cosign/p: "), "{e}");
    cp_over(&v, "cosign/p", &payload).unwrap();
    let listing = names(&v, "cosign");
    assert!(listing.iter().any(|n| n.starts_with("sig-")), "{listing:?}");
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &std::fs::read(upstream("generated/squashfs-image.signed1.oci.sif")).unwrap(),
        "after the attach",
    );
}

#[test]
fn the_total_is_never_below_the_largest_file() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open_limited(&path, 0, 128 << 10, 64 << 10);
    let (mut big, _) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    big.resize(100 << 10, b' ');
    cp_new(&v, "cosign", "big", &big).unwrap();
    assert_eq!(read_all(&v, "cosign/big").len(), 100 << 10);
}
