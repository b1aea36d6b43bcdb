//! Security defaults through a real mount: only the mounting user gets in unless
//! allow_other; the kernel enforces the modes shown (default_permissions), so another
//! user can read but not write into /cosign; staging limits hold; no symlink of the mount
//! leads outside it; and at the default level no payload, signature, annotation or
//! certificate bytes reach the log.
//!
//! Needs /dev/fuse and fusermount3, and root (to act as another user, uid 65534); fails,
//! saying so, rather than skipping.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::mounted::{Mode, Mount, Output};
use crate::common::{self, mounted};

const CMD_TIMEOUT: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;
const OCI_LAYOUT: &str = "{\"imageLayoutVersion\": \"1.0.0\"}";

/// Runs `program args` as uid and gid 65534 with no supplementary groups.
fn as_nobody(program: &str, args: &[&OsStr]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).uid(NOBODY).gid(NOBODY).current_dir("/");
    mounted::run(&mut cmd, CMD_TIMEOUT)
}

fn sh_as_nobody(script: &str, path: &Path) -> Output {
    as_nobody(
        "sh",
        &[
            "-c".as_ref(),
            script.as_ref(),
            "sh".as_ref(),
            path.as_os_str(),
        ],
    )
}

fn run(program: &str, args: &[&OsStr]) -> Output {
    mounted::run(Command::new(program).args(args), CMD_TIMEOUT)
}

/// Lets other users reach the mount point: tempfile makes its directories 0700.
fn open_the_way(m: &Mount) {
    let parent = m.mountpoint.parent().expect("the mountpoint has a parent");
    fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

#[test]
fn only_the_mounting_user_gets_in_unless_allow_other() {
    common::need_root("it checks what another user (uid 65534) may do");
    let image = common::upstream("generated/hello-world-cosign-manifest.oci.sif");

    let m = Mount::new(&image, Mode::Daemon, &[]);
    open_the_way(&m);
    // The way there is open: what fails is the mount itself.
    let o = as_nobody("stat", &[m.mountpoint.parent().unwrap().as_os_str()]);
    assert!(o.success(), "{}", o.stderr);
    let o = as_nobody("cat", &[m.path("oci-layout").as_os_str()]);
    assert!(!o.success(), "another user read the mount: {}", o.stdout);
    assert!(o.stderr.contains("Permission denied"), "{}", o.stderr);
    let o = as_nobody("ls", &[m.mountpoint.as_os_str()]);
    assert!(o.stderr.contains("Permission denied"), "{}", o.stderr);
    // The owner gets in.
    assert_eq!(
        fs::read_to_string(m.path("oci-layout")).unwrap(),
        OCI_LAYOUT
    );
    m.unmount();

    let m = Mount::new(&image, Mode::Daemon, &["-o", "allow_other"]);
    open_the_way(&m);
    let o = as_nobody("cat", &[m.path("oci-layout").as_os_str()]);
    assert!(o.success(), "{}", o.stderr);
    assert_eq!(o.stdout, OCI_LAYOUT);
    m.unmount();
}

#[test]
fn modes_are_enforced_so_that_another_user_reads_but_cannot_write_into_cosign() {
    common::need_root("it checks what another user (uid 65534) may do");
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy(dir.path(), "generated/squashfs-image.oci.sif");
    let before = fs::read(&image).unwrap();
    let m = Mount::new(&image, Mode::Foreground, &["-o", "allow_other"]);
    open_the_way(&m);

    // Read-only files and directories, /cosign writable by its owner only.
    assert_eq!(mode(&m.path("oci-layout")), 0o444);
    assert_eq!(mode(&m.path("index.json")), 0o444);
    assert_eq!(mode(&m.path("images")), 0o555);
    assert_eq!(mode(&m.path("blobs/sha256")), 0o555);
    assert_eq!(mode(&m.path("cosign")), 0o755);
    assert_eq!(fs::metadata(m.path("cosign")).unwrap().uid(), 0);

    let o = as_nobody("cat", &[m.path("index.json").as_os_str()]);
    assert!(o.success(), "{}", o.stderr);
    for (what, script, path) in [
        ("create", "echo '{}' > \"$1\"", m.path("cosign/p")),
        ("mkdir", "mkdir \"$1\"", m.path("cosign/d")),
    ] {
        let o = sh_as_nobody(script, &path);
        assert!(!o.success(), "another user could {what} {}", path.display());
        assert!(
            o.stderr.contains("Permission denied"),
            "{what}: {}",
            o.stderr
        );
    }
    // Where the owner stages a file, another user can read it but not remove it.
    let (payload, _) = common::upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    fs::write(m.path("cosign/p"), &payload).unwrap();
    assert_eq!(mode(&m.path("cosign/p")), 0o644);
    let o = as_nobody("cat", &[m.path("cosign/p").as_os_str()]);
    assert_eq!(o.stdout.as_bytes(), payload.as_slice());
    let o = sh_as_nobody("rm -f \"$1\"", &m.path("cosign/p"));
    assert!(o.stderr.contains("Permission denied"), "rm: {}", o.stderr);
    let o = sh_as_nobody("echo x >> \"$1\"", &m.path("cosign/p"));
    assert!(
        o.stderr.contains("Permission denied"),
        "append: {}",
        o.stderr
    );
    assert!(m.path("cosign/p").exists());
    fs::remove_file(m.path("cosign/p")).unwrap();
    m.unmount();
    assert_eq!(fs::read(&image).unwrap(), before, "nothing was written");
}

#[test]
fn staging_limits_hold_through_a_real_mount() {
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy(dir.path(), "generated/squashfs-image.oci.sif");
    let before = fs::read(&image).unwrap();
    let m = Mount::new(
        &image,
        Mode::Foreground,
        &[
            "-o",
            "max_staged_files=2,max_staged=8K,max_staged_total=12K",
        ],
    );
    let (payload, _) = common::upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let src = dir.path().join("payload.json");
    fs::write(&src, &payload).unwrap();
    // Payloads waiting for their signatures stay staged.
    for name in ["a", "b"] {
        let o = run(
            "cp",
            &[
                src.as_os_str(),
                m.path(&format!("cosign/{name}")).as_os_str(),
            ],
        );
        assert!(o.success(), "{name}: {}", o.stderr);
    }
    let o = run("cp", &[src.as_os_str(), m.path("cosign/c").as_os_str()]);
    assert!(!o.success());
    assert!(o.stderr.contains("No space left on device"), "{}", o.stderr);
    assert!(!m.path("cosign/c").exists());
    assert!(
        m.log_text().contains("max_staged_files"),
        "{}",
        m.log_text()
    );
    fs::remove_file(m.path("cosign/a")).unwrap();
    fs::remove_file(m.path("cosign/b")).unwrap();

    // 8K fits; another 8K does not fit in 12K together.
    let mut padded = payload.clone();
    padded.resize(8 << 10, b' ');
    fs::write(&src, &padded).unwrap();
    let o = run("cp", &[src.as_os_str(), m.path("cosign/x").as_os_str()]);
    assert!(o.success(), "{}", o.stderr);
    let o = run("cp", &[src.as_os_str(), m.path("cosign/y").as_os_str()]);
    assert!(!o.success());
    assert!(o.stderr.contains("No space left on device"), "{}", o.stderr);
    assert!(
        m.log_text().contains("max_staged_total"),
        "{}",
        m.log_text()
    );
    // And one file over 8K is too large on its own.
    padded.resize(9 << 10, b' ');
    fs::write(&src, &padded).unwrap();
    fs::remove_file(m.path("cosign/x")).unwrap();
    let o = run("cp", &[src.as_os_str(), m.path("cosign/z").as_os_str()]);
    assert!(o.stderr.contains("File too large"), "{}", o.stderr);
    m.unmount();
    assert_eq!(fs::read(&image).unwrap(), before, "nothing was committed");
}

/// `target` of the symlink at `link`, resolved lexically against its directory: `None`
/// when it climbs above `root`.
fn resolve_inside(root: &Path, link: &Path, target: &Path) -> Option<PathBuf> {
    let mut parts: Vec<_> = link
        .parent()?
        .strip_prefix(root)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    for c in target.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().fold(root.to_path_buf(), |p, n| p.join(n)))
}

/// Walks the whole mount without following links, checking every symlink: relative, and
/// resolving (lexically and by the kernel) to something inside the mount. Returns how many
/// it checked.
fn check_every_symlink(root: &Path) -> usize {
    let mut links = 0;
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path);
            } else if meta.file_type().is_symlink() {
                links += 1;
                let target = fs::read_link(&path).unwrap();
                assert!(
                    target.is_relative(),
                    "{} -> {} is absolute",
                    path.display(),
                    target.display()
                );
                let lexical = resolve_inside(root, &path, &target).unwrap_or_else(|| {
                    panic!(
                        "{} -> {} climbs out of the mount",
                        path.display(),
                        target.display()
                    )
                });
                let real = fs::canonicalize(&path).unwrap_or_else(|e| {
                    panic!(
                        "{} -> {} is dangling: {e}",
                        path.display(),
                        target.display()
                    )
                });
                assert!(
                    real.starts_with(root) && lexical.starts_with(root),
                    "{} -> {} resolves to {}",
                    path.display(),
                    target.display(),
                    real.display()
                );
            }
        }
    }
    links
}

#[test]
fn no_symlink_leads_outside_the_mount_and_dot_dot_of_its_root_is_the_parent() {
    let image = common::upstream("generated/hello-world-cosign-manifest.oci.sif");
    let m = Mount::new(&image, Mode::Daemon, &[]);
    let links = check_every_symlink(&m.mountpoint);
    assert!(
        links > 0,
        "the signed image shows symlinks (signatures/, blobs)"
    );
    // `..` of the root is the directory holding the mount point, on another file system.
    let parent = m.mountpoint.parent().unwrap();
    assert_eq!(fs::canonicalize(m.path("..")).unwrap(), parent);
    assert_ne!(
        fs::metadata(m.path("..")).unwrap().dev(),
        fs::metadata(&m.mountpoint).unwrap().dev()
    );
    assert_eq!(
        fs::canonicalize(m.path("images/../../mnt")).unwrap(),
        m.mountpoint
    );
    m.unmount();

    // After an attach, the names the user gave are links too.
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy(dir.path(), "generated/squashfs-image.oci.sif");
    let m = Mount::new(&image, Mode::Foreground, &[]);
    let (payload, annotations) =
        common::upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    fs::write(m.path("cosign/p.json"), &payload).unwrap();
    fs::write(
        m.path("cosign/p.json.sig"),
        &annotations[sifmount::cosign::SIGNATURE_ANNOTATION],
    )
    .unwrap();
    assert!(fs::symlink_metadata(m.path("cosign/p.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    let after = check_every_symlink(&m.mountpoint);
    assert!(after >= 2, "p.json and p.json.sig are links: {after}");
    m.unmount();
}

/// At the default level, a foreground mount logs every refusal and commit, by name, size
/// and digest only: a marker put in every user-supplied value never reaches the log.
#[test]
fn no_payload_signature_annotation_or_certificate_bytes_reach_the_log() {
    assert!(
        std::env::var_os("RUST_LOG").is_none(),
        "unset RUST_LOG: this test checks what the default log level shows"
    );
    const MARKER: &str = "Sifmount-Marker-7f3a";
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy(dir.path(), "generated/squashfs-image.oci.sif");
    let m = Mount::new(&image, Mode::Foreground, &[]);
    let (payload, annotations) =
        common::upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let sig = annotations[sifmount::cosign::SIGNATURE_ANNOTATION].clone();
    let payload_text = String::from_utf8(payload.clone()).unwrap();
    let wrong_type = payload_text.replace("cosign container image signature", MARKER);
    assert_ne!(wrong_type, payload_text);

    let src = dir.path().join("src");
    let drop_file = |name: &str, bytes: &[u8]| -> Output {
        fs::write(&src, bytes).unwrap();
        run(
            "cp",
            &[
                src.as_os_str(),
                m.path(&format!("cosign/{name}")).as_os_str(),
            ],
        )
    };
    let refused = |name: &str, bytes: &[u8]| {
        let o = drop_file(name, bytes);
        assert!(!o.success(), "{name} was accepted");
    };
    // Refused, for what each holds.
    refused("a", format!("{MARKER} is not JSON").as_bytes());
    refused("b", wrong_type.as_bytes());
    refused("c.annotations", format!("\"{MARKER}\"").as_bytes());
    refused(
        "d.annotations",
        format!("{{\"x\": [\"{MARKER}\"]}}").as_bytes(),
    );
    drop_file("e", &payload);
    refused(
        "e.annotations",
        format!(
            "{{\"{}\": \"{MARKER}AAAA\"}}",
            sifmount::cosign::SIGNATURE_ANNOTATION
        )
        .as_bytes(),
    );
    drop_file("f.sig", format!("{MARKER}==").as_bytes());
    refused("f", &payload);
    // Accepted, with a certificate and an annotation holding the marker.
    let cert = format!("-----BEGIN CERTIFICATE-----\n{MARKER}\n-----END CERTIFICATE-----\n");
    let o = drop_file("g.cert", cert.as_bytes());
    assert!(o.success(), "{}", o.stderr);
    let o = drop_file(
        "g.annotations",
        format!("{{\"note\": \"{MARKER}\"}}").as_bytes(),
    );
    assert!(o.success(), "{}", o.stderr);
    let o = drop_file("g.sig", sig.as_bytes());
    assert!(o.success(), "{}", o.stderr);
    let o = drop_file("g", &payload);
    assert!(o.success(), "{}: {}", o.stderr, m.log_text());
    let entry = fs::read_link(m.path("cosign/g"))
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    // Another value for a committed annotation: not this entry's, so the start of a copy
    // of another entry (the man page, ATTACHING), logged naming the file only.
    let o = drop_file(
        &format!("{}/annotations", entry.display()),
        format!("{{\"note\": \"{MARKER}-changed\"}}").as_bytes(),
    );
    assert!(o.success(), "the start of a copy: {}", o.stderr);
    let log = m.log_text();
    m.unmount();

    assert!(!log.contains(MARKER), "the marker reached the log:\n{log}");
    // Not because nothing was logged: each refusal and the commit are there.
    for line in [
        "cosign/a: payload: not valid JSON",
        "cosign/b: payload: simple-signing payload: critical.type is not",
        "cosign/c.annotations: annotations: not valid: invalid type: a string",
        "cosign/d.annotations: annotations: not valid",
        "cosign/e.annotations: annotations: dev.cosignproject.cosign/signature: not standard base64",
        "cosign/f.sig: signature: not standard base64",
        "cosign/g: attached sig sha256:",
        "/annotations: not this entry's; kept as part of a copy of another entry",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
}

/// Mounted by an ordinary user (uid 65534, through fusermount3), the modes the kernel
/// checks are that user's: it attaches, copies a committed entry's file onto itself (as
/// `cp -r` of an entry does), cannot write outside /cosign, and root, without allow_root,
/// cannot get in at all. /dev/fuse is often 0600 in containers, so the test runs in a
/// private mount namespace (unshare -m) whose /dev/fuse is a 0666 node of its own; the
/// machine's is untouched.
#[test]
fn an_ordinary_user_who_mounts_works_within_the_modes_and_root_stays_out() {
    common::need_root("it mounts as another user (uid 65534) and checks root is kept out");
    mounted::require_tool("fusermount3", "fuse3");
    mounted::require_tool("setpriv", "util-linux");
    let top = tempfile::tempdir().unwrap();
    fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let t = top.path().canonicalize().unwrap();
    let home = t.join("home");
    fs::create_dir(&home).unwrap();
    let image = common::writable_copy(&home, "generated/squashfs-image.oci.sif");
    let mp = home.join("mnt");
    fs::create_dir(&mp).unwrap();
    let (payload, annotations) =
        common::upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    fs::write(home.join("src.json"), &payload).unwrap();
    fs::write(
        home.join("src.sig"),
        &annotations[sifmount::cosign::SIGNATURE_ANNOTATION],
    )
    .unwrap();
    for p in [&home, &image, &mp] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let script = r#"
        set -u
        mkdir "$T/dev" && mount -t tmpfs tmpfs "$T/dev" || exit 10
        mknod -m 666 "$T/dev/fuse" c 10 229 && mount --bind "$T/dev/fuse" /dev/fuse || exit 11
        user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
        user "$BIN" "$H/image.oci.sif" "$H/mnt" || exit 12
        if stat "$H/mnt/oci-layout" 2>"$T/root-denied"; then
            echo "root got in"; "$BIN" -u "$H/mnt"; exit 13
        fi
        user sh -c '
            set -e
            cd "$1/mnt"
            cp ../src.json cosign/p.json
            cp ../src.sig cosign/p.json.sig
            entry=$(dirname "$(readlink cosign/p.json)")
            stat -c "%a %U" oci-layout images cosign "cosign/$entry" "cosign/$entry/annotations"
            cp "cosign/$entry/annotations" ../annotations
            cp ../annotations "cosign/$entry/annotations"
            if (echo x > index.json) 2>../denied; then echo "wrote index.json"; exit 1; fi
        ' sh "$H"
        status=$?
        user "$BIN" -u "$H/mnt" || { umount -l "$H/mnt"; exit 14; }
        exit $status
    "#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("T", &t)
        .env("H", &home)
        .env("BIN", mounted::sifmount_bin());
    let o = mounted::run(&mut cmd, CMD_TIMEOUT);
    assert!(o.success(), "{}: {}\n{}", o.status, o.stdout, o.stderr);
    let root_denied = fs::read_to_string(t.join("root-denied")).unwrap();
    assert!(root_denied.contains("Permission denied"), "{root_denied}");
    let modes: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        modes,
        [
            "444 nobody",
            "555 nobody",
            "755 nobody",
            "755 nobody",
            "644 nobody"
        ],
        "{}",
        o.stdout
    );
    let denied = fs::read_to_string(home.join("denied")).unwrap();
    assert!(denied.contains("Permission denied"), "{denied}");
    // The signature was attached, once, and the copy onto itself changed nothing.
    let signed = sifmount::oci::OciSif::open(&image, sifmount::sif::OpenMode::ReadOnly).unwrap();
    let (last, _) = common::last_signature_layer(&signed);
    assert_eq!(last, payload);
    common::assert_bytes_eq(
        &fs::read(&image).unwrap(),
        &fs::read(common::upstream("generated/squashfs-image.signed1.oci.sif")).unwrap(),
        "after the attach",
    );
}
