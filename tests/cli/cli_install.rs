//! Installing (the man page, INSTALLING): `scripts/install.sh` puts every file where its
//! user looks for it, the completions it installs are what clap_complete generates from
//! the command line and work in bash, the man page renders, and mount(8) finds the
//! `mount.sifmount` helper and mounts through it. Also what `-h` must show.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;

const IMAGE: &str = "generated/hello-world-cosign-manifest.oci.sif";
const OCI_LAYOUT: &str = "{\"imageLayoutVersion\": \"1.0.0\"}";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sifmount")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// Runs a tool, failing with the Debian package to install when it is missing.
fn tool(name: &str, package: &str, args: &[&OsStr], env: &[(&str, &OsStr)]) -> Output {
    let mut c = Command::new(name);
    c.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap_or_else(|e| {
        panic!("cannot run {name} ({e}): install the {package} package (apt-get install {package})")
    })
}

/// Runs scripts/install.sh with the test binary (no release build), PREFIX and `env`.
fn install(prefix: &Path, env: &[(&str, &OsStr)]) -> Output {
    let script = repo().join("scripts/install.sh");
    let mut all = vec![("SIFMOUNT_BIN", OsStr::new(bin()))];
    all.extend_from_slice(env);
    let o = tool(
        "bash",
        "bash",
        &[script.as_os_str(), prefix.as_os_str()],
        &all,
    );
    assert_ok(&o, "scripts/install.sh");
    o
}

fn completions(shell: &str) -> Vec<u8> {
    let o = tool(
        bin(),
        "sifmount",
        &["--completions".as_ref(), shell.as_ref()],
        &[],
    );
    assert_ok(&o, &format!("sifmount --completions {shell}"));
    assert!(!o.stdout.is_empty(), "{shell}");
    o.stdout
}

#[track_caller]
fn assert_executable(path: &Path) {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "{}", path.display());
}

#[track_caller]
fn assert_same(path: &Path, expected: &[u8]) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    common::assert_bytes_eq(&got, expected, &path.display().to_string());
}

#[test]
fn install_puts_every_file_where_it_is_looked_for_under_destdir() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let o = install(Path::new("/usr/local"), &[("DESTDIR", stage.as_os_str())]);
    let under = |p: &str| -> PathBuf { stage.join(p.trim_start_matches('/')) };

    let program = under("/usr/local/bin/sifmount");
    assert_executable(&program);
    assert_same(&program, &std::fs::read(bin()).unwrap());
    // mount(8) looks for mount.TYPE in /sbin, /sbin/fs.d and /sbin/fs only; the helper
    // runs the program where it is installed, not under DESTDIR.
    let helper = under("/sbin/mount.sifmount");
    assert_executable(&helper);
    let script = std::fs::read_to_string(&helper).unwrap();
    assert!(
        script.contains("sifmount=/usr/local/bin/sifmount\n"),
        "{script}"
    );
    assert!(!script.contains(stage.to_str().unwrap()), "{script}");
    let page = under("/usr/local/share/man/man1/sifmount.1");
    assert_same(
        &page,
        &std::fs::read(repo().join("man/sifmount.1")).unwrap(),
    );
    for (path, shell) in [
        (
            "/usr/local/share/bash-completion/completions/sifmount",
            "bash",
        ),
        ("/usr/local/share/zsh/site-functions/_sifmount", "zsh"),
        (
            "/usr/local/share/fish/vendor_completions.d/sifmount.fish",
            "fish",
        ),
    ] {
        assert_same(&under(path), &completions(shell));
    }
    // Nothing else, and the output says where each file went.
    let mut files = Vec::new();
    walk(&stage, &mut files);
    assert_eq!(files.len(), 6, "{files:?}");
    for f in &files {
        assert!(
            text(&o.stdout).contains(&format!("installed {}", f.display())),
            "{}",
            text(&o.stdout)
        );
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_installed_bash_completion_completes_options() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    install(Path::new("/usr"), &[("DESTDIR", stage.as_os_str())]);
    let file = stage.join("usr/share/bash-completion/completions/sifmount");
    // What bash-completion does with the file, then what bash does at a Tab after WORD.
    let script = r#"
        set -e
        source "$FILE"
        spec=$(complete -p sifmount)
        f=$(printf '%s\n' "$spec" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
        [ -n "$f" ] || { echo "no completion function in: $spec" >&2; exit 1; }
        COMP_WORDS=(sifmount "$WORD"); COMP_CWORD=1
        COMP_LINE="sifmount $WORD"; COMP_POINT=${#COMP_LINE}
        "$f" sifmount "$WORD" sifmount
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let complete = |word: &str| -> Vec<String> {
        let o = tool(
            "bash",
            "bash",
            &["-c".as_ref(), script.as_ref()],
            &[("FILE", file.as_os_str()), ("WORD", word.as_ref())],
        );
        assert_ok(&o, &format!("completing {word}"));
        assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
        text(&o.stdout).lines().map(str::to_string).collect()
    };
    let ve = complete("--ve");
    assert!(ve.contains(&"--verify".to_string()), "{ve:?}");
    assert_eq!(complete("--veri"), ["--verify"]);
    assert_eq!(complete("--ke"), ["--key"]);
    assert!(
        complete("--").contains(&"--certificate-oidc-issuer".to_string()),
        "every long option"
    );
}

#[test]
fn the_zsh_and_fish_completions_name_every_option() {
    // Neither shell is a test dependency: the files are clap_complete's (the install test
    // compares them byte for byte); here, that they cover the options.
    let zsh = text(&completions("zsh"));
    assert!(zsh.starts_with("#compdef sifmount\n"), "{zsh}");
    let fish = text(&completions("fish"));
    for option in ["verify", "key", "inspect", "sign", "unmount", "recover"] {
        assert!(
            zsh.contains(&format!("--{option}=[")) || zsh.contains(&format!("--{option}[")),
            "zsh: --{option}"
        );
        assert!(fish.contains(&format!(" -l {option} ")), "fish: --{option}");
    }
}

#[test]
fn the_installed_man_page_renders() {
    let dir = tempfile::tempdir().unwrap();
    install(
        dir.path(),
        &[("SBINDIR", dir.path().join("sbin").as_os_str())],
    );
    let page = dir.path().join("share/man/man1/sifmount.1");
    let o = tool(
        "man",
        "man-db",
        &["-l".as_ref(), page.as_os_str()],
        &[("MANPAGER", "cat".as_ref()), ("MANWIDTH", "80".as_ref())],
    );
    assert_ok(&o, "man -l");
    let shown = text(&o.stdout);
    for section in ["NAME", "SYNOPSIS", "MOUNT OPTIONS", "INSTALLING"] {
        assert!(shown.contains(section), "{section}: {shown}");
    }
    assert!(shown.contains("nonempty"), "{shown}");
}

#[test]
fn mount_finds_the_installed_helper_and_mounts_through_it() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: this test mounts for real"
    );
    common::need_root("it bind-mounts the installed helper's directory over /sbin, in a mount namespace of its own");
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let prefix = t.join("prefix");
    let sbin = t.join("sbin");
    install(&prefix, &[("SBINDIR", sbin.as_os_str())]);
    let image = t.join("image.oci.sif");
    std::fs::copy(common::upstream(IMAGE), &image).unwrap();
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mp = t.join("mnt");
    std::fs::create_dir(&mp).unwrap();
    // mount(8) finds mount.sifmount in /sbin: the installed one, seen there in a private
    // mount namespace (the machine's /sbin is not touched).
    let script = r#"
        set -u
        mount --bind "$SBIN" /sbin || exit 10
        mount -f -t sifmount "$IMAGE" "$MP" -o ro || exit 11
        if grep -q " $MP " /proc/self/mountinfo; then echo "mount -f mounted"; exit 12; fi
        mount -t sifmount "$IMAGE" "$MP" -o ro,noexec || exit 13
        cat "$MP/oci-layout" > "$T/layout" || exit 14
        grep " $MP " /proc/self/mountinfo > "$T/mountinfo" || exit 15
        umount "$MP" || exit 16
    "#;
    let o = tool(
        "unshare",
        "util-linux",
        &[
            "-m".as_ref(),
            "--propagation".as_ref(),
            "private".as_ref(),
            "sh".as_ref(),
            "-c".as_ref(),
            script.as_ref(),
        ],
        &[
            ("T", t.as_os_str()),
            ("SBIN", sbin.as_os_str()),
            ("IMAGE", image.as_os_str()),
            ("MP", mp.as_os_str()),
        ],
    );
    assert_ok(&o, "mount -t sifmount");
    assert_eq!(
        std::fs::read_to_string(t.join("layout")).unwrap(),
        OCI_LAYOUT
    );
    let line = std::fs::read_to_string(t.join("mountinfo")).unwrap();
    let flags = line.split(' ').nth(5).unwrap_or_default();
    for flag in ["ro", "noexec"] {
        assert!(flags.split(',').any(|f| f == flag), "{flag}: {line}");
    }
    assert!(line.contains(" fuse"), "{line}");
}

/// Every option the man page's OPTIONS lists is in the short help (-h) and the long
/// one (--help), under the same name.
#[test]
fn help_shows_every_option_of_the_man_page() {
    let page = std::fs::read_to_string(repo().join("man/sifmount.1")).unwrap();
    let options = page
        .split("\n.SH OPTIONS\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .expect("the man page has an OPTIONS section");
    let mut listed = Vec::new();
    let mut lines = options.lines();
    while let Some(line) = lines.next() {
        if line != ".TP" {
            continue;
        }
        let tag = lines.next().unwrap_or_default().replace("\\-", "-");
        for word in tag.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if word.starts_with('-') && word.len() > 1 {
                listed.push(word.to_string());
            }
        }
    }
    for must in [
        "--key",
        "--verify",
        "--sign",
        "-o",
        "-u",
        "--certificate-identity",
    ] {
        assert!(listed.iter().any(|o| o == must), "{must} in {listed:?}");
    }
    for flag in ["-h", "--help"] {
        let o = tool(bin(), "sifmount", &[flag.as_ref()], &[]);
        assert_ok(&o, flag);
        let help = text(&o.stdout);
        for option in &listed {
            let shown = help
                .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '|')
                .any(|w| {
                    w == option
                        || w.starts_with(&format!("{option}="))
                        || w.starts_with(&format!("{option} "))
                });
            assert!(shown, "{flag} leaves out {option}:\n{help}");
        }
    }
}
