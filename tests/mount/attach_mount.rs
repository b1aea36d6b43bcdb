//! Attaching cosign signatures through a real read-write mount (the man page, ATTACHING,
//! "Attaching"): files and directories copied into `/cosign` with `cp` commit at close(2)
//! and leave the image exactly as the library (and SingularityCE) would write it; refused
//! drops fail with the documented errno, say why in an error file and leave the image
//! byte-identical; `-o ro` and files without write bits refuse every change; `rm -r` of an
//! entry removes its layer.
//!
//! Needs /dev/fuse, `fusermount3` (fuse3), `openssl` and coreutils (`cp`, `rm`, `base64`);
//! fails, saying how to install what is missing, rather than skipping.
//!
//! Why this file is long: every way a user attaches through the mount (files, `cp`,
//! `cp -r`, `mkdir`, openssl, DSSE envelopes, refusals, `rm -r`, read-only followers)
//! compares with the same expected bytes of one demo image and reports errnos with the
//! same helpers at its top; the helpers other files share live in `tests/common/`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::IntoRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::mounted::{assert_ok, cp, ls, read, run_tool, Mode, Mount};
use crate::common::{self, assert_bytes_eq, cosign_data, images, mounted, upstream};
use sifmount::cosign::{attach, discover, prepare, AttachOutcome, DropFiles, Entry, EntryKind};
use sifmount::oci::{Index, LayoutDir, OciSif};
use sifmount::sif::{Digest, MemStorage, OpenMode, SifImage};

/// The hello-world image of the cosign fixtures, which its signature and attestation sign.
const HELLO: &str = "432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338";
/// The fixture layout holding it, its `.sig` and its `.att` images.
const HELLO_LAYOUT: &str = "ocitools-hello-world-cosign-manifest";
/// The fixture's attestation payload: a DSSE envelope for [`HELLO`].
const HELLO_ATT_PAYLOAD: &str = "51a5ebe9c08828b74e4c6b65c2398591df2288eacbe411bc97a9e39ef104b99a";

// ---------------------------------------------------------------------------------------
// Files, commands, errnos
// ---------------------------------------------------------------------------------------

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn readlink(path: &Path) -> String {
    fs::read_link(path)
        .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()))
        .to_string_lossy()
        .into_owned()
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Mounts `image` with `sifmount -f` (read-write when the file has a write bit): in the
/// foreground, sifmount's log (commits, refusals and their reasons) goes to the mount's
/// log file, which failures show; a daemon's goes to /dev/null.
fn mount_with(image: &Path, extra: &[&str]) -> Mount {
    Mount::new(image, Mode::Foreground, extra)
}

fn mount(image: &Path) -> Mount {
    mount_with(image, &[])
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOSYS => "ENOSYS",
        libc::EACCES => "EACCES",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// The step of a file operation that failed, with its errno.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// open(2) (with O_CREAT), mkdir(2), symlink(2), … : the operation itself.
    Op(i32),
    /// write(2).
    Write(i32),
    /// close(2): where a drop commits, or says why it cannot.
    Close(i32),
}

impl std::fmt::Debug for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Op(e) => write!(f, "the operation failed with {}", errno_name(*e)),
            Failed::Write(e) => write!(f, "write failed with {}", errno_name(*e)),
            Failed::Close(e) => write!(f, "close failed with {}", errno_name(*e)),
        }
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {e}"))
}

/// Writes `bytes` to `path` (created or truncated) in one write(2) and closes it with
/// close(2) directly: std's `File` drop ignores close errors, and close is where a drop
/// commits or is refused.
fn write_close(path: &Path, bytes: &[u8]) -> Result<(), Failed> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Failed::Op(errno_of(&e)))?;
    let written = (&file).write_all(bytes);
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just released by the File, so it is open and closed once, here.
    let rc = unsafe { libc::close(fd) };
    let close_errno = last_errno();
    if let Err(e) = written {
        return Err(Failed::Write(errno_of(&e)));
    }
    if rc == -1 {
        return Err(Failed::Close(close_errno));
    }
    Ok(())
}

/// [`write_close`] with one write(2) per chunk: a file that goes over the size limit
/// part-way, as `cp` of a large file does.
fn write_chunks_close(path: &Path, chunks: &[Vec<u8>]) -> Result<(), Failed> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Failed::Op(errno_of(&e)))?;
    let written = chunks.iter().try_for_each(|c| (&file).write_all(c));
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just released by the File, so it is open and closed once, here.
    let rc = unsafe { libc::close(fd) };
    let close_errno = last_errno();
    if let Err(e) = written {
        return Err(Failed::Write(errno_of(&e)));
    }
    if rc == -1 {
        return Err(Failed::Close(close_errno));
    }
    Ok(())
}

fn libc_result(rc: libc::c_int) -> Result<(), Failed> {
    if rc == -1 {
        Err(Failed::Op(last_errno()))
    } else {
        Ok(())
    }
}

fn mkdir(path: &Path) -> Result<(), Failed> {
    fs::create_dir(path).map_err(|e| Failed::Op(errno_of(&e)))
}

fn symlink(target: &str, path: &Path) -> Result<(), Failed> {
    std::os::unix::fs::symlink(target, path).map_err(|e| Failed::Op(errno_of(&e)))
}

fn rename(from: &Path, to: &Path) -> Result<(), Failed> {
    fs::rename(from, to).map_err(|e| Failed::Op(errno_of(&e)))
}

fn hard_link(from: &Path, to: &Path) -> Result<(), Failed> {
    fs::hard_link(from, to).map_err(|e| Failed::Op(errno_of(&e)))
}

fn mkfifo(path: &Path) -> Result<(), Failed> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in test paths");
    // SAFETY: a valid NUL-terminated path; mkfifo(3) touches nothing else.
    libc_result(unsafe { libc::mkfifo(c.as_ptr(), 0o644) })
}

// ---------------------------------------------------------------------------------------
// Images and expected bytes
// ---------------------------------------------------------------------------------------

/// A fresh demo image (one small tar layer, 8 spare descriptors) at `dir/name`, mode
/// 0644; returns its path and its manifest digest.
fn demo_image(dir: &Path, name: &str) -> (PathBuf, Digest) {
    let (path, manifest) = images::demo_image_at(dir, name, 8);
    chmod(&path, 0o644);
    (path, manifest)
}

/// An OCI-SIF holding only the hello-world image of the cosign fixture layout (its
/// root-index entry without a reference name), with 8 spare descriptors, mode 0644: the
/// image before anything signed it.
fn hello_target_only(dir: &Path, name: &str) -> PathBuf {
    let layout = LayoutDir::new(cosign_data(HELLO_LAYOUT));
    let mut index = Index::parse(&layout.index_bytes().unwrap()).unwrap();
    let removed = index.remove(|e| e.ref_name().is_some());
    assert_eq!(removed, 2, "the fixture's .sig and .att entries");
    assert_eq!(index.entries().len(), 1);
    assert_eq!(index.entries()[0].digest.hex(), HELLO);
    let path = dir.join(name);
    sifmount::oci::write_oci_sif_at_path(&path, &index.to_go_json(), &layout, 8)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    chmod(&path, 0o644);
    path
}

/// What the library writes when it attaches `drop` to an in-memory copy of `image`: the
/// bytes a mount must leave behind after the same drop.
fn attached_in_memory(image: &[u8], drop: &DropFiles) -> Vec<u8> {
    let storage = Arc::new(MemStorage::new(image.to_vec()));
    let sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let mut oci = OciSif::from_sif(sif).unwrap();
    let a = prepare(&oci, drop)
        .unwrap_or_else(|e| panic!("prepare: {e}"))
        .expect("a complete drop");
    assert_eq!(attach(&mut oci, &a).unwrap(), AttachOutcome::Attached);
    storage.to_vec()
}

/// Every cosign entry of an image file, with its payload bytes.
fn entries_of(image: &Path) -> Vec<(Entry, Vec<u8>)> {
    let oci = OciSif::open(image, OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", image.display()));
    let d = discover(&oci);
    assert!(
        d.warnings.is_empty(),
        "{}: {:?}",
        image.display(),
        d.warnings
    );
    d.entries
        .into_iter()
        .map(|e| {
            let payload = oci.read_blob(&e.layer.digest).unwrap();
            (e, payload)
        })
        .collect()
}

fn entry_of_kind(entries: &[(Entry, Vec<u8>)], kind: EntryKind) -> &(Entry, Vec<u8>) {
    let found: Vec<_> = entries.iter().filter(|(e, _)| e.kind == kind).collect();
    assert_eq!(found.len(), 1, "one {kind:?} entry, found {}", found.len());
    found[0]
}

/// A SingularityCE-style simple-signing payload for `target`.
fn simple_signing(target: &Digest, timestamp: u64) -> Vec<u8> {
    common::simple_signing(
        target,
        &format!(r#"{{"creator":"sifmount attach_mount test","timestamp":{timestamp}}}"#),
    )
}

/// `sig-<13 hex of the target>-<n>`: the entry name of the n-th signature of `target`.
fn sig_name(target: &Digest, n: usize) -> String {
    format!("sig-{}-{n}", &target.hex()[..13])
}

fn strip_whitespace(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect()
}

/// A P-256 key pair made with openssl, and a payload signed with it as
/// `openssl dgst -sha256 -sign key.pem payload.json | base64` would write it.
struct OpensslKey {
    key: PathBuf,
    public: PathBuf,
}

impl OpensslKey {
    fn generate(dir: &Path) -> OpensslKey {
        let key = dir.join("key.pem");
        let public = dir.join("pub.pem");
        let out = run_tool(
            "openssl",
            "openssl",
            &[
                &"ecparam",
                &"-genkey",
                &"-name",
                &"prime256v1",
                &"-noout",
                &"-out",
                &key,
            ],
        );
        assert!(out.success(), "openssl ecparam: {}", out.stderr);
        let out = run_tool(
            "openssl",
            "openssl",
            &[&"ec", &"-in", &key, &"-pubout", &"-out", &public],
        );
        assert!(out.success(), "openssl ec -pubout: {}", out.stderr);
        OpensslKey { key, public }
    }

    /// The base64 text (wrapped at 76 columns, ending in a newline, as coreutils
    /// `base64` prints it) of the ECDSA signature of `payload`.
    fn sign(&self, payload: &Path) -> Vec<u8> {
        let der = payload.with_extension("der");
        let out = run_tool(
            "openssl",
            "openssl",
            &[
                &"dgst", &"-sha256", &"-sign", &self.key, &"-out", &der, &payload,
            ],
        );
        assert!(out.success(), "openssl dgst -sign: {}", out.stderr);
        let out = run_tool("base64", "coreutils", &[&der]);
        assert!(out.success(), "base64: {}", out.stderr);
        out.stdout.into_bytes()
    }
}

/// What test 1 and its followers set up: a demo image and, in a work directory, a
/// simple-signing payload for it (`payload.json`) with its openssl signature
/// (`payload.json.sig`).
struct SignedDemo {
    dir: tempfile::TempDir,
    target: Digest,
    /// The image file before anything was attached.
    unsigned: Vec<u8>,
    key: OpensslKey,
    payload: PathBuf,
    signature: PathBuf,
}

impl SignedDemo {
    fn new() -> SignedDemo {
        let dir = tempfile::tempdir().unwrap();
        let (image, target) = demo_image(dir.path(), "demo.oci.sif");
        let unsigned = read(&image);
        let key = OpensslKey::generate(dir.path());
        let payload = dir.path().join("payload.json");
        write(&payload, &simple_signing(&target, 1_700_000_000));
        let signature = dir.path().join("payload.json.sig");
        let sig = key.sign(&payload);
        assert!(
            sig.iter().filter(|&&b| b == b'\n').count() >= 2 && sig.ends_with(b"\n"),
            "base64 wraps the signature over lines and ends it with a newline: {}",
            String::from_utf8_lossy(&sig)
        );
        write(&signature, &sig);
        SignedDemo {
            dir,
            target,
            unsigned,
            key,
            payload,
            signature,
        }
    }

    /// A fresh unsigned copy of the demo image, for one more independent attach.
    fn fresh_image(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        write(&path, &self.unsigned);
        chmod(&path, 0o644);
        path
    }

    /// The image file the library writes for this payload and signature file.
    fn expected_signed(&self) -> Vec<u8> {
        attached_in_memory(
            &self.unsigned,
            &DropFiles {
                payload: Some(read(&self.payload)),
                signature: Some(read(&self.signature)),
                ..DropFiles::default()
            },
        )
    }

    fn entry(&self) -> String {
        sig_name(&self.target, 1)
    }

    /// Mounts `image` read-write and copies payload and signature in with one `cp`, the
    /// signature first when `signature_first`; checks that cp succeeded.
    fn attach_with_cp(&self, image: &Path, signature_first: bool) -> Mount {
        let m = mount(image);
        let cosign = m.path("cosign");
        let out = if signature_first {
            cp(&[&self.signature, &self.payload, &cosign])
        } else {
            cp(&[&self.payload, &self.signature, &cosign])
        };
        assert_ok(&out, "cp payload.json payload.json.sig MP/cosign/", &m);
        m
    }
}

// ---------------------------------------------------------------------------------------
// 1. openssl P-256 signature, payload and signature copied in either order
// ---------------------------------------------------------------------------------------

/// The basic drop: a payload and its base64 signature (wrapped and newline-terminated as
/// `base64` prints it) copied with one `cp`, in either order, commit as entry
/// `sig-<13hex>-1` with the user's names as links into it, write exactly what the
/// library writes, and verify with the openssl public key after a remount.
#[test]
fn openssl_signature_attaches_in_either_order() {
    let demo = SignedDemo::new();
    let expected = demo.expected_signed();
    let entry = demo.entry();
    let sig_text = strip_whitespace(&read(&demo.signature));
    for (signature_first, name) in [(false, "payload-first.sif"), (true, "sig-first.sif")] {
        let image = demo.fresh_image(name);
        let m = demo.attach_with_cp(&image, signature_first);
        let cosign = m.path("cosign");
        assert_eq!(
            ls(&cosign),
            [
                "payload.json".to_string(),
                "payload.json.sig".to_string(),
                entry.clone()
            ],
            "{name}: the entry and the two names given, as links; log:\n{}",
            m.log_text()
        );
        assert!(
            cosign.join(&entry).is_dir(),
            "{name}: {entry} is a directory"
        );
        assert!(is_symlink(&cosign.join("payload.json")), "{name}");
        assert!(is_symlink(&cosign.join("payload.json.sig")), "{name}");
        assert_eq!(
            readlink(&cosign.join("payload.json")),
            format!("{entry}/payload")
        );
        assert_eq!(
            readlink(&cosign.join("payload.json.sig")),
            format!("{entry}/signature")
        );
        assert_eq!(
            read(&cosign.join(&entry).join("signature")),
            sig_text,
            "{name}: the signature annotation is the base64 text without line breaks"
        );
        assert_eq!(
            read(&cosign.join("payload.json")),
            read(&demo.payload),
            "{name}: the link leads to the payload"
        );
        m.unmount();
        assert_bytes_eq(
            &read(&image),
            &expected,
            &format!("{name} after the attach"),
        );

        let public = demo.key.public.to_str().unwrap();
        let m = mount_with(&image, &["-o", "ro", "--key", public]);
        let dir = m.path("cosign").join(&entry);
        let verified = String::from_utf8(read(&dir.join("verified"))).unwrap();
        assert!(
            verified.starts_with("ok"),
            "{name}: {entry}/verified says {verified:?}"
        );
        assert_eq!(read(&dir.join("payload")), read(&demo.payload), "{name}");
        m.unmount();

        let out = mounted::run(
            Command::new(mounted::sifmount_bin())
                .arg("--verify")
                .arg(&image),
            mounted::TOOL_TIMEOUT,
        );
        assert!(
            out.success(),
            "sifmount --verify {}: {} {} {}",
            image.display(),
            out.status,
            out.stdout,
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Byte-identical to SingularityCE
// ---------------------------------------------------------------------------------------

/// Copies `payload.json` and `payload.json.sig` (signature text plus a newline, as
/// `cosign sign --output-signature` writes it) made from `signed`'s newest signature
/// layer into a read-write mount of `image`.
fn attach_upstream_layer(image: &Path, work: &Path, signed: &str) -> (PathBuf, PathBuf) {
    let (payload, signature) = common::upstream_singularity_signature(signed);
    let payload_file = work.join("payload.json");
    let sig_file = work.join("payload.json.sig");
    write(&payload_file, &payload);
    write(&sig_file, format!("{signature}\n").as_bytes());
    let m = mount(image);
    let out = cp(&[&payload_file, &sig_file, &m.path("cosign")]);
    assert_ok(&out, &format!("cp {signed}'s layer into the mount"), &m);
    m.unmount();
    (payload_file, sig_file)
}

/// Signing through the mount gives the very bytes SingularityCE 4.5 wrote when it
/// signed the same image twice (`singularity sign --cosign`).
#[test]
fn attaching_through_the_mount_is_byte_identical_to_singularity() {
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy_of(
        &upstream("generated/squashfs-image.oci.sif"),
        dir.path(),
        "image.oci.sif",
    );
    for step in ["signed1", "signed2"] {
        let rel = format!("generated/squashfs-image.{step}.oci.sif");
        attach_upstream_layer(&image, dir.path(), &rel);
        assert_bytes_eq(&read(&image), &read(&upstream(&rel)), &rel);
    }
}

// ---------------------------------------------------------------------------------------
// 3. The same layer again
// ---------------------------------------------------------------------------------------

/// A copy repeated (through the links in the same mount, or as new names in a later
/// mount) must not grow the image: the layer is already there.
#[test]
fn attaching_the_same_layer_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy_of(
        &upstream("generated/squashfs-image.oci.sif"),
        dir.path(),
        "image.oci.sif",
    );
    let rel = "generated/squashfs-image.signed1.oci.sif";
    let (payload, sig) = attach_upstream_layer(&image, dir.path(), rel);
    let signed = read(&upstream(rel));
    assert_bytes_eq(&read(&image), &signed, "after the first attach");

    for round in ["a later mount", "the same mount again"] {
        let m = mount(&image);
        let cosign = m.path("cosign");
        let out = cp(&[&payload, &sig, &cosign]);
        assert_ok(&out, &format!("cp of the same layer in {round}"), &m);
        if round == "the same mount again" {
            // Now through the links the first cp of this mount left.
            assert!(is_symlink(&cosign.join("payload.json")));
            let out = cp(&[&payload, &sig, &cosign]);
            assert_ok(&out, "cp onto the links", &m);
        }
        let listed = ls(&cosign);
        assert!(
            listed.iter().filter(|n| n.starts_with("sig-")).count() == 1,
            "{round}: still one signature: {listed:?}"
        );
        m.unmount();
        let now = read(&image);
        assert_eq!(now.len(), signed.len(), "{round}: file length");
        assert_bytes_eq(&now, &signed, round);
    }
}

// ---------------------------------------------------------------------------------------
// 4. cp -r of entries between mounts
// ---------------------------------------------------------------------------------------

/// `cp -r /mnt1/cosign/<entry> /mnt2/cosign/` copies a signature and an attestation from
/// one image to another (derived files such as `target` and `media-type` included, and
/// ignored): the copies have the same payloads and annotations and still verify; doing
/// it again changes nothing.
#[test]
fn cp_r_copies_entries_between_mounts() {
    let source_image = upstream("generated/hello-world-cosign-manifest.oci.sif");
    let dir = tempfile::tempdir().unwrap();
    let dst = hello_target_only(dir.path(), "dst.oci.sif");
    let sig = format!("sig-{}-1", &HELLO[..13]);
    let att = format!("att-{}-1", &HELLO[..13]);

    let src = mount(&source_image);
    let m = mount(&dst);
    let from = src.path("cosign");
    let out = cp(&[&"-r", &from.join(&sig), &from.join(&att), &m.path("cosign")]);
    assert_ok(
        &out,
        "cp -r SRC/cosign/sig-… SRC/cosign/att-… DST/cosign/",
        &m,
    );
    let mut want = vec![att.clone(), sig.clone()];
    want.sort();
    assert_eq!(ls(&m.path("cosign")), want, "log:\n{}", m.log_text());
    m.unmount();

    let source_entries = entries_of(&source_image);
    let copied = entries_of(&dst);
    assert_eq!(copied.len(), 2, "one signature and one attestation");
    for kind in [EntryKind::Signature, EntryKind::Attestation] {
        let (want, want_payload) = entry_of_kind(&source_entries, kind);
        let (got, got_payload) = entry_of_kind(&copied, kind);
        assert_eq!(got_payload, want_payload, "{kind:?} payload");
        assert_eq!(
            got.annotations(),
            want.annotations(),
            "{kind:?} annotations"
        );
        assert_eq!(got.layer.media_type, want.layer.media_type, "{kind:?}");
        assert_eq!(got.target.hex(), HELLO, "{kind:?} target");
    }

    let key = cosign_data("keys/singularity-cosign.pub");
    let key = key.to_str().unwrap();
    let m = mount_with(&dst, &["--key", key, "-o", "ro"]);
    for entry in [&sig, &att] {
        let v = String::from_utf8(read(&m.path("cosign").join(entry).join("verified"))).unwrap();
        assert!(v.starts_with("ok"), "{entry}/verified says {v:?}");
    }
    m.unmount();

    let before = read(&dst);
    let m = mount(&dst);
    let out = cp(&[&"-r", &from.join(&sig), &from.join(&att), &m.path("cosign")]);
    assert_ok(&out, "the same cp -r again", &m);
    assert_eq!(ls(&m.path("cosign")), want);
    m.unmount();
    src.unmount();
    assert_bytes_eq(&read(&dst), &before, "after the same cp -r again");
}

// ---------------------------------------------------------------------------------------
// 5. A DSSE envelope alone
// ---------------------------------------------------------------------------------------

/// An attestation carries its signature inside: the envelope alone commits at close, as
/// `att-<13hex>-1`, with the layer annotations cosign would write.
#[test]
fn dsse_envelope_alone_attaches_an_attestation() {
    let dir = tempfile::tempdir().unwrap();
    let image = hello_target_only(dir.path(), "image.oci.sif");
    let envelope = read(&cosign_data(&format!(
        "{HELLO_LAYOUT}/blobs/sha256/{HELLO_ATT_PAYLOAD}"
    )));
    let att = format!("att-{}-1", &HELLO[..13]);

    // The fixture's entry, as a mount of the signed upstream file shows it.
    let fixture = mount(&upstream("generated/hello-world-cosign-manifest.oci.sif"));
    let fixture_annotations = read(&fixture.path("cosign").join(&att).join("annotations"));
    fixture.unmount();

    let m = mount(&image);
    let cosign = m.path("cosign");
    assert_eq!(
        write_close(&cosign.join("att.json"), &envelope),
        Ok(()),
        "log:\n{}",
        m.log_text()
    );
    assert_eq!(ls(&cosign), ["att-432f982638b3a-1", "att.json"]);
    assert_eq!(readlink(&cosign.join("att.json")), format!("{att}/payload"));
    let entry = cosign.join(&att);
    assert_eq!(read(&entry.join("payload")), envelope);
    assert_eq!(
        read(&entry.join("predicate-type")),
        b"https://cosign.sigstore.dev/attestation/v1\n"
    );
    assert_eq!(
        String::from_utf8(read(&entry.join("annotations"))).unwrap(),
        String::from_utf8(fixture_annotations).unwrap(),
        "the layer annotations cosign attest wrote"
    );
    m.unmount();
    let entries = entries_of(&image);
    let (e, payload) = entry_of_kind(&entries, EntryKind::Attestation);
    assert_eq!(payload, &envelope);
    assert_eq!(e.target.hex(), HELLO);
}

// ---------------------------------------------------------------------------------------
// 6. Invalid inputs
// ---------------------------------------------------------------------------------------

/// One step of a case, relative to `MP/cosign` (`..` reaches the mount's root).
enum Step {
    File(&'static str, Vec<u8>),
    /// Written with one write(2) per chunk, then closed.
    Chunks(&'static str, Vec<Vec<u8>>),
    Dir(&'static str),
    Symlink(&'static str, &'static str),
    Rename(&'static str, &'static str),
    Link(&'static str, &'static str),
    Fifo(&'static str),
}

impl Step {
    fn run(&self, cosign: &Path) -> Result<(), Failed> {
        match self {
            Step::File(name, bytes) => write_close(&cosign.join(name), bytes),
            Step::Chunks(name, chunks) => write_chunks_close(&cosign.join(name), chunks),
            Step::Dir(name) => mkdir(&cosign.join(name)),
            Step::Symlink(target, name) => symlink(target, &cosign.join(name)),
            Step::Rename(from, to) => rename(&cosign.join(from), &cosign.join(to)),
            Step::Link(from, to) => hard_link(&cosign.join(from), &cosign.join(to)),
            Step::Fifo(name) => mkfifo(&cosign.join(name)),
        }
    }

    fn shown(&self) -> String {
        match self {
            Step::File(name, bytes) => format!("write {} bytes to cosign/{name}", bytes.len()),
            Step::Chunks(name, chunks) => format!(
                "write {:?} bytes to cosign/{name}",
                chunks.iter().map(Vec::len).collect::<Vec<_>>()
            ),
            Step::Dir(name) => format!("mkdir cosign/{name}"),
            Step::Symlink(target, name) => format!("ln -s {target} cosign/{name}"),
            Step::Rename(from, to) => format!("mv cosign/{from} cosign/{to}"),
            Step::Link(from, to) => format!("ln cosign/{from} cosign/{to}"),
            Step::Fifo(name) => format!("mkfifo cosign/{name}"),
        }
    }
}

/// A refused drop: `setup` succeeds, `action` fails with `expect`; when `error_file` is
/// given it exists and its text contains `mentions`, and the `staged` files stay visible.
struct Case {
    what: &'static str,
    setup: Vec<Step>,
    action: Step,
    expect: Failed,
    error_file: Option<&'static str>,
    mentions: &'static str,
    staged: Vec<&'static str>,
}

/// Every kind of bad input fails with its documented errno, from the call that makes it
/// certain, says why in the entry's error file, keeps the staged files visible, and
/// commits nothing: the image stays byte-identical.
#[test]
fn invalid_drops_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (image, target) = demo_image(dir.path(), "demo.oci.sif");
    let before = read(&image);
    let good_payload = simple_signing(&target, 1_700_000_000);
    let zero: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    // A real signature (of another payload): standard base64, which is all a drop is
    // checked for; nothing here verifies it.
    let good_sig = b"MEYCIQCvk/Hm0uRosi3yQQ4T5TnBkI0MFdydeKtVpDhA5IatGgIhAJ0DgXgf9qKP/sQqdCaSIff3tmm3rS5PjANp3WCG/bJ4\n".to_vec();
    let einval = libc::EINVAL;
    let cases = vec![
        Case {
            what: "payload that is not JSON",
            setup: vec![],
            action: Step::File("notjson", b"this is not json\n".to_vec()),
            expect: Failed::Close(einval),
            error_file: Some("notjson.error"),
            mentions: "not valid JSON",
            staged: vec!["notjson"],
        },
        Case {
            what: "a JSON array",
            setup: vec![],
            action: Step::File("array.json", b"[1, 2, 3]".to_vec()),
            expect: Failed::Close(einval),
            error_file: Some("array.json.error"),
            mentions: "not a JSON object",
            staged: vec!["array.json"],
        },
        Case {
            what: "an unknown payload format",
            setup: vec![],
            action: Step::File("hello.json", br#"{"hello":"world"}"#.to_vec()),
            expect: Failed::Close(einval),
            error_file: Some("hello.json.error"),
            mentions: "unknown payload format",
            staged: vec!["hello.json"],
        },
        Case {
            what: "a target that is not in the image",
            setup: vec![Step::File("zero.json.sig", good_sig.clone())],
            action: Step::File("zero.json", simple_signing(&zero, 1)),
            expect: Failed::Close(einval),
            error_file: Some("zero.json.error"),
            mentions: "not a manifest or index in this image",
            staged: vec!["zero.json", "zero.json.sig"],
        },
        Case {
            what: "a signature that is not base64",
            setup: vec![Step::File("nob64.json", good_payload.clone())],
            action: Step::File("nob64.json.sig", b"not base64!!".to_vec()),
            expect: Failed::Close(einval),
            error_file: Some("nob64.json.error"),
            mentions: "not standard base64",
            staged: vec!["nob64.json", "nob64.json.sig"],
        },
        Case {
            what: "annotations with a number value",
            setup: vec![],
            action: Step::File("num.json.annotations", br#"{"a":1}"#.to_vec()),
            expect: Failed::Close(einval),
            error_file: Some("num.json.error"),
            mentions: "annotations",
            staged: vec!["num.json.annotations"],
        },
        Case {
            what: "annotations that are not JSON",
            setup: vec![],
            action: Step::File("text.json.annotations", b"not json".to_vec()),
            expect: Failed::Close(einval),
            error_file: Some("text.json.error"),
            mentions: "annotations",
            staged: vec!["text.json.annotations"],
        },
        Case {
            what: "a directory whose annotations are a JSON array",
            setup: vec![Step::Dir("arraydir")],
            action: Step::File("arraydir/annotations", b"[]".to_vec()),
            expect: Failed::Close(einval),
            error_file: Some("arraydir/error"),
            mentions: "annotations",
            staged: vec!["arraydir/annotations"],
        },
        Case {
            what: "a file over the size limit (-o max_staged=4K)",
            setup: vec![],
            action: Step::File("big.json", vec![b'x'; 8192]),
            expect: Failed::Write(libc::EFBIG),
            error_file: Some("big.json.error"),
            mentions: "size limit",
            staged: vec!["big.json"],
        },
        Case {
            // The first write fits and is a valid base64 prefix; the drop must still be
            // refused as a whole, not committed with the part that fitted.
            what: "a signature that goes over the size limit part-way",
            setup: vec![Step::File("halfbig.json", good_payload.clone())],
            action: Step::Chunks(
                "halfbig.json.sig",
                vec![b"AAAA".repeat(1024), b"AAAA".repeat(512)],
            ),
            expect: Failed::Write(libc::EFBIG),
            error_file: Some("halfbig.json.error"),
            mentions: "size limit",
            staged: vec!["halfbig.json", "halfbig.json.sig"],
        },
        Case {
            what: "a hidden name",
            setup: vec![],
            action: Step::File(".hidden", good_payload.clone()),
            expect: Failed::Op(einval),
            error_file: None,
            mentions: "",
            staged: vec![],
        },
        Case {
            what: "a name ending in .error",
            setup: vec![],
            action: Step::File("x.error", good_payload.clone()),
            expect: Failed::Op(einval),
            error_file: None,
            mentions: "",
            staged: vec![],
        },
        Case {
            what: "mkdir inside a staged directory",
            setup: vec![Step::Dir("outer")],
            action: Step::Dir("outer/inner"),
            expect: Failed::Op(libc::EPERM),
            error_file: None,
            mentions: "",
            staged: vec!["outer"],
        },
        Case {
            what: "a symbolic link in /cosign",
            setup: vec![],
            action: Step::Symlink("/etc/passwd", "link.json"),
            expect: Failed::Op(libc::EPERM),
            error_file: None,
            mentions: "",
            staged: vec![],
        },
        Case {
            what: "a FIFO in /cosign",
            setup: vec![],
            action: Step::Fifo("fifo.json"),
            expect: Failed::Op(libc::EPERM),
            error_file: None,
            mentions: "",
            staged: vec![],
        },
        Case {
            what: "renaming a staged file",
            setup: vec![Step::File("torename.json.sig", good_sig.clone())],
            action: Step::Rename("torename.json.sig", "renamed.json.sig"),
            expect: Failed::Op(libc::EPERM),
            error_file: None,
            mentions: "",
            staged: vec!["torename.json.sig"],
        },
        Case {
            what: "a hard link to a staged file",
            setup: vec![Step::File("tolink.json.sig", good_sig.clone())],
            action: Step::Link("tolink.json.sig", "linked.json.sig"),
            expect: Failed::Op(libc::EPERM),
            error_file: None,
            mentions: "",
            staged: vec!["tolink.json.sig"],
        },
        Case {
            what: "a new file outside /cosign",
            setup: vec![],
            action: Step::File("../newfile", good_payload.clone()),
            expect: Failed::Op(libc::EROFS),
            error_file: None,
            mentions: "",
            staged: vec![],
        },
    ];

    let m = mount_with(&image, &["-o", "max_staged=4K"]);
    let cosign = m.path("cosign");
    let mut failures = Vec::new();
    for case in &cases {
        for step in &case.setup {
            if let Err(e) = step.run(&cosign) {
                failures.push(format!("{}: setup `{}`: {e:?}", case.what, step.shown()));
            }
        }
        let got = case.action.run(&cosign);
        if got != Err(case.expect) {
            failures.push(format!(
                "{}: `{}`: expected {:?}, got {}",
                case.what,
                case.action.shown(),
                case.expect,
                match got {
                    Ok(()) => "success".to_string(),
                    Err(e) => format!("{e:?}"),
                }
            ));
        }
        if let Some(error_file) = case.error_file {
            match fs::read_to_string(cosign.join(error_file)) {
                Ok(text) if text.contains(case.mentions) => {}
                Ok(text) => failures.push(format!(
                    "{}: cosign/{error_file} does not mention {:?}: {text:?}",
                    case.what, case.mentions
                )),
                Err(e) => failures.push(format!("{}: cosign/{error_file}: {e}", case.what)),
            }
        }
        for staged in &case.staged {
            if fs::symlink_metadata(cosign.join(staged)).is_err() {
                failures.push(format!(
                    "{}: the staged cosign/{staged} is no longer visible",
                    case.what
                ));
            }
        }
    }
    // Nothing was committed: no entry appeared, and no link.
    let listed = ls(&cosign);
    if let Some(n) = listed
        .iter()
        .find(|n| n.starts_with("sig-") || n.starts_with("att-"))
    {
        failures.push(format!("an entry was committed: {n} (listing {listed:?})"));
    }
    for name in &listed {
        if is_symlink(&cosign.join(name)) {
            failures.push(format!("cosign/{name} is a link: something committed"));
        }
    }
    let log = m.log_text();
    m.unmount();
    assert_bytes_eq(&read(&image), &before, "the image after refused drops");
    assert!(
        failures.is_empty(),
        "{} of {} cases went wrong:\n  {}\nmount log:\n{log}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// 7. Read-only mounts
// ---------------------------------------------------------------------------------------

/// `-o ro`, or an image file without write bits, refuses every change with EROFS and
/// never writes to the image (bytes and mtime unchanged).
#[test]
fn read_only_mounts_refuse_every_change() {
    let demo = SignedDemo::new();
    let image = common::writable_copy_of(
        &upstream("generated/squashfs-image.signed1.oci.sif"),
        demo.dir.path(),
        "signed1.oci.sif",
    );
    let zero_bits = common::writable_copy_of(
        &upstream("generated/squashfs-image.signed1.oci.sif"),
        demo.dir.path(),
        "no-write-bits.oci.sif",
    );
    chmod(&zero_bits, 0o444);
    for (image, extra, what) in [
        (&image, &["-o", "ro"][..], "-o ro"),
        (&zero_bits, &[][..], "a 0444 image"),
    ] {
        let bytes = read(image);
        let mtime = fs::metadata(image).unwrap().modified().unwrap();
        let m = mount_with(image, extra);
        let cosign = m.path("cosign");
        let entries_before = ls(&cosign);
        let options = mounted::mount_at(&m.mountpoint).unwrap().options;
        assert!(
            options.split(',').any(|o| o == "ro"),
            "{what}: mounted read-only: {options}"
        );
        let entry = entries_before
            .iter()
            .find(|n| n.starts_with("sig-"))
            .unwrap_or_else(|| panic!("{what}: the signed copy lists {entries_before:?}"));

        let out = cp(&[&demo.payload, &demo.signature, &cosign]);
        assert_eq!(out.status.code(), Some(1), "{what}: cp: {}", out.stderr);
        assert!(
            out.stderr.contains("Read-only file system"),
            "{what}: cp says why: {}",
            out.stderr
        );
        assert_eq!(
            write_close(&cosign.join("payload.json"), &read(&demo.payload)),
            Err(Failed::Op(libc::EROFS)),
            "{what}: creating a file in cosign/"
        );
        assert_eq!(
            mkdir(&cosign.join("entry")),
            Err(Failed::Op(libc::EROFS)),
            "{what}: mkdir in cosign/"
        );
        let out = run_tool("rm", "coreutils", &[&"-r", &cosign.join(entry)]);
        assert_eq!(out.status.code(), Some(1), "{what}: rm -r: {}", out.stderr);
        assert!(
            out.stderr.contains("Read-only file system"),
            "{what}: rm says why: {}",
            out.stderr
        );
        let payload = cosign.join(entry).join("payload");
        assert_eq!(
            fs::OpenOptions::new()
                .write(true)
                .open(&payload)
                .map(drop)
                .map_err(|e| errno_name(errno_of(&e))),
            Err("EROFS".to_string()),
            "{what}: opening a committed file for writing"
        );
        assert_eq!(ls(&cosign), entries_before, "{what}: cosign/ unchanged");
        m.unmount();
        assert_bytes_eq(&read(image), &bytes, what);
        assert_eq!(
            fs::metadata(image).unwrap().modified().unwrap(),
            mtime,
            "{what}: the image's mtime"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 8. rm -r of an entry
// ---------------------------------------------------------------------------------------

/// `rm -r MP/cosign/<entry>` removes that signature layer with the update algorithm:
/// attach then remove gives back the exact unsigned file, and removing SingularityCE's
/// second signature gives back its file with one.
#[test]
fn rm_r_removes_the_signature_layer() {
    let demo = SignedDemo::new();
    let image = demo.fresh_image("image.oci.sif");
    let m = demo.attach_with_cp(&image, false);
    let cosign = m.path("cosign");
    let entry = demo.entry();
    assert!(ls(&cosign).contains(&entry), "{:?}", ls(&cosign));
    let out = run_tool("rm", "coreutils", &[&"-r", &cosign.join(&entry)]);
    assert_ok(&out, &format!("rm -r MP/cosign/{entry}"), &m);
    assert_eq!(
        ls(&cosign),
        Vec::<String>::new(),
        "the entry and its links are gone; log:\n{}",
        m.log_text()
    );
    m.unmount();
    assert_bytes_eq(&read(&image), &demo.unsigned, "attach then rm -r");

    let signed2 = common::writable_copy_of(
        &upstream("generated/squashfs-image.signed2.oci.sif"),
        demo.dir.path(),
        "signed2.oci.sif",
    );
    let m = mount(&signed2);
    let cosign = m.path("cosign");
    let listed = ls(&cosign);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].starts_with("sig-") && listed[0].ends_with("-1"));
    assert!(listed[1].starts_with("sig-") && listed[1].ends_with("-2"));
    let out = run_tool("rm", "coreutils", &[&"-r", &cosign.join(&listed[1])]);
    assert_ok(&out, &format!("rm -r MP/cosign/{}", listed[1]), &m);
    assert_eq!(ls(&cosign), [listed[0].clone()]);
    m.unmount();
    assert_bytes_eq(
        &read(&signed2),
        &read(&upstream("generated/squashfs-image.signed1.oci.sif")),
        "signed2 less its second signature",
    );
}

// ---------------------------------------------------------------------------------------
// 9. Rewriting committed files
// ---------------------------------------------------------------------------------------

/// Committed signatures are append-only: the same bytes again are fine, a changed
/// payload changes nothing (it would be part of a copy of another entry), and a
/// certificate written afterwards adds its annotation.
#[test]
fn committed_entries_take_same_bytes_and_new_annotations_only() {
    let demo = SignedDemo::new();
    let image = demo.fresh_image("image.oci.sif");
    let m = demo.attach_with_cp(&image, false);
    let cosign = m.path("cosign");
    let entry = demo.entry();
    let signed = read(&image);
    assert_bytes_eq(&signed, &demo.expected_signed(), "after the attach");

    // The same bytes, through the link the attach left.
    let out = cp(&[&demo.payload, &cosign.join("payload.json")]);
    assert_ok(&out, "cp payload.json MP/cosign/payload.json", &m);
    assert_bytes_eq(&read(&image), &signed, "after rewriting the same payload");

    // Different bytes for the committed payload: not this entry's, so the start of a
    // copy of another entry (`copy_mount.rs`), which waits for its signature; the entry
    // and the image stay as they were.
    let mut changed = read(&demo.payload);
    changed.extend_from_slice(b"\n");
    assert_eq!(
        write_close(&cosign.join(&entry).join("payload"), &changed),
        Ok(()),
        "another payload written into a committed entry; log:\n{}",
        m.log_text()
    );
    assert_eq!(
        read(&cosign.join(&entry).join("payload")),
        read(&demo.payload)
    );
    assert_bytes_eq(&read(&image), &signed, "after refusing a changed payload");

    // A certificate after the fact.
    let cert_text = "-----BEGIN CERTIFICATE-----\n\
        MIIBszCCAVmgAwIBAgIUUnlGZ2x0c2lmbW91bnQgdGVzdCBjZXJ0MAoGCCqGSM49\n\
        BAMCMBIxEDAOBgNVBAMMB3NpZm1vdW50MB4XDTI0MDEwMTAwMDAwMFoXDTM0MDEw\n\
        -----END CERTIFICATE-----\n";
    let cert = demo.dir.path().join("payload.json.cert");
    write(&cert, cert_text.as_bytes());
    let out = cp(&[&cert, &cosign]);
    assert_ok(&out, "cp payload.json.cert MP/cosign/", &m);
    let entry_dir = cosign.join(&entry);
    assert_eq!(
        String::from_utf8(read(&entry_dir.join("certificate"))).unwrap(),
        cert_text,
        "the entry's certificate; log:\n{}",
        m.log_text()
    );
    let annotations: BTreeMap<String, String> =
        serde_json::from_slice(&read(&entry_dir.join("annotations"))).unwrap();
    assert_eq!(
        annotations
            .get("dev.sigstore.cosign/certificate")
            .map(String::as_str),
        Some(cert_text)
    );
    assert_eq!(
        annotations.get("dev.cosignproject.cosign/signature"),
        Some(&String::from_utf8(strip_whitespace(&read(&demo.signature))).unwrap()),
        "the signature stays"
    );
    assert_eq!(
        ls(&cosign),
        [
            "payload.json".to_string(),
            "payload.json.cert".to_string(),
            "payload.json.sig".to_string(),
            entry.clone()
        ]
    );
    m.unmount();
    let entries = entries_of(&image);
    assert_eq!(entries.len(), 1, "still one layer");
    let (e, payload) = &entries[0];
    assert_eq!(payload, &read(&demo.payload));
    assert_eq!(
        e.annotations()
            .get("dev.sigstore.cosign/certificate")
            .map(String::as_str),
        Some(cert_text)
    );
}

// ---------------------------------------------------------------------------------------
// 10. A directory made with mkdir
// ---------------------------------------------------------------------------------------

/// The directory form by hand: `mkdir MP/cosign/mine`, then `payload` and `signature`
/// written into it; the entry commits at the close that completes it. `mine` stays the
/// directory the user wrote (so `cp -r`, which creates each file with O_EXCL, can go on
/// after the commit), and the entry appears under its canonical name beside it.
#[test]
fn a_directory_made_with_mkdir_commits_and_stays_as_written() {
    let demo = SignedDemo::new();
    let image = demo.fresh_image("image.oci.sif");
    let m = mount(&image);
    let cosign = m.path("cosign");
    let mine = cosign.join("mine");
    assert_eq!(mkdir(&mine), Ok(()));
    assert_eq!(
        write_close(&mine.join("payload"), &read(&demo.payload)),
        Ok(())
    );
    assert_eq!(ls(&cosign), ["mine"], "pending until it has a signature");
    assert_eq!(
        write_close(&mine.join("signature"), &read(&demo.signature)),
        Ok(()),
        "log:\n{}",
        m.log_text()
    );
    let entry = demo.entry();
    assert_eq!(ls(&cosign), ["mine".to_string(), entry.clone()]);
    assert!(!is_symlink(&mine) && mine.is_dir());
    assert_eq!(ls(&mine), ["payload", "signature"]);
    // A file added after the commit is taken (here: a derived file, ignored).
    assert_eq!(write_close(&mine.join("target"), b"anything\n"), Ok(()));
    assert_eq!(
        read(&cosign.join(&entry).join("signature")),
        strip_whitespace(&read(&demo.signature))
    );
    m.unmount();
    assert_bytes_eq(
        &read(&image),
        &demo.expected_signed(),
        "after the mkdir drop",
    );
}

/// A daemonized mount (which runs in `/`) of an image named by a relative path attaches
/// like any other: the image and its journal are found by absolute names.
#[test]
fn a_daemon_mount_of_a_relative_path_attaches() {
    let demo = SignedDemo::new();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let image = dir.path().join("image.oci.sif");
    write(&image, &demo.unsigned);
    chmod(&image, 0o644);
    let relative = image
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .expect("cargo's target directory is inside the package")
        .to_path_buf();
    assert!(relative.is_relative() && relative.exists());
    let m = Mount::new(&relative, Mode::Daemon, &[]);
    let out = cp(&[&demo.payload, &demo.signature, &m.path("cosign")]);
    assert_ok(&out, "cp payload.json payload.json.sig MP/cosign/", &m);
    assert!(ls(&m.path("cosign")).contains(&demo.entry()));
    m.unmount();
    assert_bytes_eq(
        &read(&image),
        &demo.expected_signed(),
        "after a daemon's attach",
    );
}

/// What the kernel remembers never hides a commit: the root index read before an attach
/// and again after it shows the new entry, and the new blobs are there by name, while the
/// names that cannot change (the image's own blobs) kept their inodes.
#[test]
fn a_commit_is_visible_through_the_kernel_caches_at_once() {
    use std::os::unix::fs::MetadataExt;
    let demo = SignedDemo::new();
    let image = demo.fresh_image("image.oci.sif");
    let m = mount(&image);
    let before = read(&m.path("index.json"));
    let blobs_before: Vec<(String, u64)> = ls(&m.path("blobs/sha256"))
        .into_iter()
        .map(|n| {
            let ino = fs::metadata(m.path(&format!("blobs/sha256/{n}")))
                .unwrap()
                .ino();
            (n, ino)
        })
        .collect();
    let out = cp(&[&demo.payload, &demo.signature, &m.path("cosign")]);
    assert_ok(&out, "cp payload.json payload.json.sig MP/cosign/", &m);
    let after = read(&m.path("index.json"));
    assert_ne!(after, before, "index.json shows the new root index");
    assert!(String::from_utf8_lossy(&after).contains("_cosign:sha256-"));
    let blobs_after = ls(&m.path("blobs/sha256"));
    assert_eq!(
        blobs_after.len(),
        blobs_before.len() + 3,
        "payload, config, manifest"
    );
    for (name, ino) in &blobs_before {
        let now = fs::metadata(m.path(&format!("blobs/sha256/{name}")))
            .unwrap()
            .ino();
        assert_eq!(now, *ino, "blob {name} kept its inode");
    }
    m.unmount();
}

/// The daemon's resident memory, in KiB (`VmRSS` of /proc/PID/status).
fn resident_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Every path under `dir`, as `find` walks it: each directory opened, listed and closed.
fn walk(dir: &Path) -> usize {
    let mut count = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        count += 1;
        if e.file_type().unwrap().is_dir() {
            count += walk(&e.path());
        }
    }
    count
}

/// Listings taken between attaches (`find` walking the mount while signatures are
/// copied in) are let go when their directories are closed: every directory handle keeps
/// a copy of its listing until releasedir, so a daemon that missed the releasedir grew by
/// every listing it ever gave (tens of MB here, hundreds on a larger image) and never
/// gave it back. Memory is compared after the first attach and after the last.
#[test]
fn listings_between_attaches_are_let_go_when_closed() {
    const ATTACHES: usize = 40;
    const WALKS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let (image, target) = demo_image(dir.path(), "image.oci.sif");
    let m = mount(&image);
    let signature = b"c2lmbW91bnQgbGlzdGluZ3MgdGVzdA==\n";
    let mut before = 0;
    for n in 1..=ATTACHES {
        let base = m.path(&format!("cosign/p{n}"));
        write_close(&base, &simple_signing(&target, n as u64)).unwrap();
        write_close(&base.with_extension("sig"), signature).unwrap();
        for _ in 0..WALKS {
            walk(&m.mountpoint);
        }
        if n == 1 {
            before = resident_kib(m.pid());
        }
    }
    let after = resident_kib(m.pid());
    let entries = ls(&m.path("cosign"))
        .iter()
        .filter(|e| e.starts_with("sig-"))
        .count();
    assert_eq!(entries, ATTACHES, "every signature attached");
    assert!(
        after < before + 8 * 1024,
        "{ATTACHES} attaches with {WALKS} walks of the mount after each: the daemon went \
         from {before} KiB to {after} KiB resident"
    );
    m.unmount();
}

// ---------------------------------------------------------------------------------------
// One image, two mounts
// ---------------------------------------------------------------------------------------

/// A read-only mount of an image follows a read-write mount of the same file through a
/// hundred attaches (four of them grow the descriptor table): every tenth is waited for
/// in the read-only mount's `/cosign` and `index.json`, all show at the end without
/// remounting, a layer it held open across the growths reads back whole, and every blob
/// it lists hashes to its name. Meanwhile two
/// readers hash every blob and parse `index.json` through the read-only mount without
/// pause: a read may fail (the object was removed), but never returns other bytes.
#[test]
fn a_read_only_mount_follows_a_read_write_mount_of_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let (image, target) = demo_image(dir.path(), "shared.oci.sif");
    let rw = mount(&image);
    let ro = mount_with(&image, &["-o", "ro"]);
    let blobs = ro.mountpoint.join("blobs/sha256");
    let layer = ls(&blobs)
        .into_iter()
        .max_by_key(|name| fs::metadata(blobs.join(name)).unwrap().len())
        .expect("the image has blobs");
    let mut held = fs::File::open(blobs.join(&layer)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (root, stop) = (ro.mountpoint.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut good, mut failed) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let names = fs::read_dir(root.join("blobs/sha256"))
                        .map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>())
                        .unwrap_or_default();
                    for e in names {
                        let name = e.file_name().to_string_lossy().into_owned();
                        match fs::read(e.path()) {
                            Ok(bytes) => {
                                assert_eq!(
                                    Digest::of(&bytes).hex(),
                                    name,
                                    "wrong bytes for blob {name}"
                                );
                                good += 1;
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    match fs::read(root.join("index.json")) {
                        Ok(bytes) => {
                            Index::parse(&bytes).unwrap_or_else(|e| {
                                panic!(
                                    "index.json read as {} bytes that are no index: {e}",
                                    bytes.len()
                                )
                            });
                            good += 1;
                        }
                        Err(_) => failed += 1,
                    }
                }
                (good, failed)
            })
        })
        .collect();
    let signature = b"MEYCIQCvk/Hm0uRosi3yQQ4T5TnBkI0MFdydeKtVpDhA5IatGgIhAJ0DgXgf9qKP/sQqdCaSIff3tmm3rS5PjANp3WCG/bJ4\n";
    let mut slowest = Duration::ZERO;
    const ATTACHES: usize = 100;
    for n in 1..=ATTACHES {
        let cosign = rw.mountpoint.join("cosign");
        write_close(
            &cosign.join(format!("p{n}.json")),
            &simple_signing(&target, 1_700_000_000 + n as u64),
        )
        .unwrap();
        write_close(&cosign.join(format!("p{n}.json.sig")), signature).unwrap();
        if n % 10 != 0 && n != ATTACHES {
            continue;
        }
        let want_index = read(&rw.mountpoint.join("index.json"));
        let entry = sig_name(&target, n);
        let start = Instant::now();
        loop {
            let shown = ls(&ro.mountpoint.join("cosign")).contains(&entry)
                && fs::read(ro.mountpoint.join("index.json")).ok().as_ref() == Some(&want_index);
            if shown {
                break;
            }
            // A deadline against a hang, not a speed check (scripts/bench.sh measures).
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "attach {n}: the read-only mount does not show {entry} and the new index.json"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        slowest = slowest.max(start.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        let (good, failed) = r.join().expect("a reader saw wrong bytes");
        assert!(good > 0, "the reader read something");
        println!("reader: {good} whole files read right, {failed} reads failed (removed)");
    }
    println!("slowest time for an attach to show in the read-only mount: {slowest:.2?}");
    let sif = SifImage::open(&image, OpenMode::ReadOnly).unwrap();
    // 4 image objects + 3 for the first signature + 1 for each further one, from 12 slots.
    assert!(
        sif.header().descriptors_total >= 192,
        "the attaches grew the table four times ({} slots)",
        sif.header().descriptors_total
    );
    let mut bytes = Vec::new();
    held.read_to_end(&mut bytes).unwrap();
    assert_eq!(
        Digest::of(&bytes).hex(),
        layer,
        "the layer held open across the growth"
    );
    for name in ls(&blobs) {
        let bytes = read(&blobs.join(&name));
        assert_eq!(
            Digest::of(&bytes).hex(),
            name,
            "blob {name} through the read-only mount"
        );
    }
    // The read-write mount also shows the names the signatures were dropped under.
    let entries: Vec<String> = ls(&rw.mountpoint.join("cosign"))
        .into_iter()
        .filter(|n| n.starts_with("sig-"))
        .collect();
    assert_eq!(entries.len(), ATTACHES, "every attach is an entry");
    assert_eq!(ls(&ro.mountpoint.join("cosign")), entries);
}

// ---------------------------------------------------------------------------------------
// Content trust: -o verify_drops
// ---------------------------------------------------------------------------------------

/// `-o verify_drops` with `--key`: a payload signed by that key attaches as always; one
/// signed by another key is refused at close with EPERM, says why in its `.error` file,
/// and leaves the image byte-identical.
#[test]
fn verify_drops_takes_only_signatures_that_verify_under_the_mount_keys() {
    let demo = SignedDemo::new();
    let public = demo.key.public.to_str().unwrap().to_string();

    // Signed by another key: refused, nothing written.
    let other_dir = demo.dir.path().join("other");
    fs::create_dir(&other_dir).unwrap();
    let other = OpensslKey::generate(&other_dir);
    let image = demo.fresh_image("refused.sif");
    let before = read(&image);
    let m = mount_with(&image, &["--key", &public, "-o", "verify_drops"]);
    let cosign = m.path("cosign");
    write_close(&cosign.join("payload.json"), &read(&demo.payload)).unwrap();
    let got = write_close(&cosign.join("payload.json.sig"), &other.sign(&demo.payload));
    assert_eq!(
        got,
        Err(Failed::Close(libc::EPERM)),
        "log:\n{}",
        m.log_text()
    );
    let why = fs::read_to_string(cosign.join("payload.json.error"))
        .unwrap_or_else(|e| panic!("payload.json.error: {e}; log:\n{}", m.log_text()));
    assert!(
        why.contains("does not verify, and this mount takes only signatures that do")
            && why.contains(&format!("signature does not verify with {public}")),
        "{why}"
    );
    assert!(
        !ls(&cosign).iter().any(|n| n.starts_with("sig-")),
        "{:?}",
        ls(&cosign)
    );
    m.unmount();
    assert_bytes_eq(&read(&image), &before, "the image after a refused drop");

    // Signed by the mount's key: attached, byte-identical to an attach without the
    // option, and its entry says it verified.
    let image = demo.fresh_image("taken.sif");
    let m = mount_with(&image, &["--key", &public, "-o", "verify_drops"]);
    let out = cp(&[&demo.payload, &demo.signature, &m.path("cosign")]);
    assert_ok(&out, "cp payload.json payload.json.sig MP/cosign/", &m);
    let verified =
        fs::read_to_string(m.path("cosign").join(demo.entry()).join("verified")).unwrap();
    assert!(verified.starts_with("ok: verified with "), "{verified}");
    m.unmount();
    assert_bytes_eq(
        &read(&image),
        &demo.expected_signed(),
        "the image after the attach",
    );
}

/// `-o verify_drops` and `-o require_signed` need something to verify with.
#[test]
fn content_trust_options_without_a_key_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = demo_image(dir.path(), "demo.oci.sif");
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).unwrap();
    for option in ["verify_drops", "require_signed"] {
        let out = mounted::run(
            Command::new(mounted::sifmount_bin())
                .args(["-f", "-o", option])
                .arg(&image)
                .arg(&mp),
            mounted::TOOL_TIMEOUT,
        );
        assert_eq!(out.status.code(), Some(2), "{option}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("-o {option} needs something to verify with")),
            "{option}: {}",
            out.stderr
        );
        assert!(!mounted::is_mounted(&mp), "{option}: nothing is mounted");
    }
}
