//! The `sifmount` command line (the man page): mount an image, unmount it, or inspect and
//! verify it without mounting.
#![forbid(unsafe_code)]

mod checks;
mod daemon;
mod fatal;
mod inspect;
mod keys;
mod logging;
mod options;
mod sign;
mod signatures;
mod trust;
mod unmount;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, ValueHint};
use fatal::{one_line, Fatal};
use sifmount::tree::TreeOptions;
use sifmount::volume::{
    why_read_only, Volume, VolumeOptions, DEFAULT_MAX_STAGED_FILES, DEFAULT_MAX_STAGED_SIZE,
    DEFAULT_MAX_STAGED_TOTAL,
};
use trust::TrustArgs;

/// Mount SIF / OCI-SIF container images as plain files.
///
/// Mounted, an OCI-SIF is an OCI image layout (index.json, blobs/sha256/...) with one
/// directory per image under images/, the raw SIF objects under sif/ and cosign
/// signatures under cosign/; files copied into cosign/ are attached to the image as
/// signatures (unless -o ro). Without -f, sifmount returns once the mount is ready and serves it in the
/// background; unmount with sifmount -u, fusermount3 -u or umount.
#[derive(Debug, Parser)]
#[command(name = "sifmount", version, arg_required_else_help = true)]
#[command(
    override_usage = "sifmount [-f] [-d] [--key KEY | --certificate-identity ID --certificate-oidc-issuer URL] [-o OPT[,OPT...]]... IMAGE MOUNTPOINT\n       \
                            sifmount -u MOUNTPOINT\n       \
                            sifmount [-d] --inspect IMAGE\n       \
                            sifmount [-d] --verify IMAGE [--key PUB | --certificate-identity ID --certificate-oidc-issuer URL] [--image NAME|DIGEST] [--output json]\n       \
                            sifmount [-d] --sign IMAGE --key KEY [-a KEY=VALUE]... [--image NAME|DIGEST] [--recursive]\n       \
                            sifmount [-d] --recover IMAGE"
)]
#[command(
    after_help = "Mount options (-o): ro (never write the image), rw (the default when \
                        the image is writable: files copied into cosign/ attach signatures; \
                        refused when it is not), nonempty (mount over a directory with \
                        files in it, hiding them; refused without), \
                        max_staged=SIZE (largest file accepted in cosign/, default 16M), \
                        max_staged_files=N (files held in cosign/ at once, default 1024), \
                        max_staged_total=SIZE (their bytes together, default 64M), \
                        require_signed (with --key or an identity: only images that \
                        verify under images/, other blobs refused), verify_drops (attach \
                        only signatures that verify), allow_other, allow_root (without either only the mounting user \
                        gets in), uid=N, gid=N, fsname=NAME, threads=N, nosuid, nodev, \
                        noexec, suid, dev, exec, noatime, atime, sync, async, dirsync; \
                        default_permissions is always on; defaults, auto, noauto, user, \
                        users, nouser, _netdev, nofail, x-*, comment=* are ignored.\n\n\
                        --sign takes the password of an encrypted key from \
                        COSIGN_PASSWORD (empty allowed), else asks on the terminal.\n\n\
                        Logs go to stderr with -f, to syslog (ident sifmount, facility \
                        daemon) when daemonized. See sifmount(1)."
)]
struct Cli {
    /// Print the SIF header, every used descriptor and, for an OCI-SIF, the root index.
    #[arg(long, value_name = "IMAGE", value_hint = ValueHint::FilePath,
          conflicts_with_all = ["verify", "image", "unmount"])]
    inspect: Option<PathBuf>,

    /// Check that every OCI blob hashes to the digest its descriptor records; with --key
    /// or a certificate identity, also that every image has a signature that verifies
    /// (exit status 0 only then).
    #[arg(long, value_name = "IMAGE", value_hint = ValueHint::FilePath,
          conflicts_with_all = ["inspect", "image", "unmount"])]
    verify: Option<PathBuf>,

    /// Sign the image with the private key --key (cosign's encrypted .key or PKCS#8), as
    /// `singularity sign --cosign --key` does: one signature per target, attached under
    /// /cosign; one line per signature made.
    #[arg(long, value_name = "IMAGE", value_hint = ValueHint::FilePath,
          conflicts_with_all = ["inspect", "verify", "recover", "image", "unmount"])]
    sign: Option<PathBuf>,

    /// With --sign: add KEY=VALUE to the payload's `optional` (as cosign's -a); repeatable.
    #[arg(
        short = 'a',
        long = "annotation",
        value_name = "KEY=VALUE",
        requires = "sign"
    )]
    annotations: Vec<String>,

    /// With --sign: also sign each manifest of the image's index (cosign sign --recursive).
    #[arg(long, requires = "sign")]
    recursive: bool,

    /// With --verify: check only this image; with --sign: sign this image (its name under
    /// /images, or its digest).
    #[arg(long = "image", value_name = "NAME|DIGEST")]
    select_image: Option<String>,

    /// With --verify: print what verified as JSON on standard output, as `cosign verify
    /// --output json` does (the payloads, with the certificate's Subject and Issuer and
    /// the Rekor Bundle added to `optional`).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"], requires = "verify")]
    output: Option<String>,

    /// Finish (or undo) an update that a crash interrupted, from IMAGE.sifmount-journal;
    /// a read-write mount does the same by itself.
    #[arg(long, value_name = "IMAGE", value_hint = ValueHint::FilePath,
          conflicts_with_all = ["inspect", "verify", "image", "unmount"])]
    recover: Option<PathBuf>,

    /// Unmount the FUSE file system at MOUNTPOINT (also a stale one).
    #[arg(short = 'u', long = "unmount", value_name = "MOUNTPOINT", value_hint = ValueHint::DirPath,
          conflicts_with_all = ["inspect", "verify", "image"])]
    unmount: Option<PathBuf>,

    /// Stay in the foreground: serve the mount until it is unmounted or interrupted.
    #[arg(short = 'f', long)]
    foreground: bool,

    /// Debug logging (RUST_LOG, when set, takes precedence); implies -f, as in libfuse.
    #[arg(short, long)]
    debug: bool,

    #[command(flatten)]
    trust: TrustArgs,

    /// Mount options, comma-separated; repeatable (see below).
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    options: Vec<String>,

    /// The SIF or OCI-SIF image to mount.
    #[arg(value_name = "IMAGE", requires = "mountpoint", value_hint = ValueHint::FilePath)]
    image: Option<PathBuf>,

    /// An existing directory to mount it on.
    #[arg(value_name = "MOUNTPOINT", value_hint = ValueHint::DirPath)]
    mountpoint: Option<PathBuf>,

    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell) and
    /// exit. Hidden: scripts/install.sh installs them (the man page, INSTALLING).
    #[arg(long, value_name = "SHELL", hide = true, exclusive = true)]
    completions: Option<clap_complete::Shell>,
}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut Cli::command(), "sifmount", &mut Stdout);
        return ExitCode::SUCCESS;
    }
    let mounting = cli.image.is_some();
    let foreground = cli.foreground || cli.debug;
    logging::init(cli.debug, mounting && foreground);

    let result = if cli.trust.any() && cli.verify.is_none() && cli.sign.is_none() && !mounting {
        Err(Fatal::usage(
            "--key, the certificate options, --trusted-root and --insecure-ignore-tlog \
             apply to a mount and to --verify only (and --key to --sign)",
        ))
    } else if cli.select_image.is_some() && cli.verify.is_none() && cli.sign.is_none() {
        Err(Fatal::usage("--image applies to --verify and --sign only"))
    } else if let Some(image) = &cli.sign {
        sign(image, &cli)
    } else if let Some(image) = &cli.inspect {
        inspect::inspect(image, &mut Stdout).map_err(|e| Fatal::failure(e.to_string()))
    } else if let Some(image) = &cli.verify {
        verify(image, &cli)
    } else if let Some(image) = &cli.recover {
        recover(image)
    } else if let Some(mountpoint) = &cli.unmount {
        unmount::unmount(mountpoint).map(|()| ExitCode::SUCCESS)
    } else {
        // clap guarantees MOUNTPOINT with IMAGE (requires).
        match (&cli.image, &cli.mountpoint) {
            (Some(image), Some(mountpoint)) => {
                mount(image, mountpoint, &cli.options, &cli.trust, foreground)
                    .map(|()| ExitCode::SUCCESS)
            }
            // -f, -d or -o alone.
            _ => Err(Fatal::usage(
                "nothing to do: give IMAGE MOUNTPOINT, -u MOUNTPOINT, --inspect IMAGE, \
                 --verify IMAGE or --recover IMAGE (see --help)",
            )),
        }
    };
    match result {
        Ok(code) => code,
        Err(fatal) => {
            eprintln!("sifmount: {}", one_line(&fatal.message));
            ExitCode::from(fatal.status)
        }
    }
}

/// Checks everything that can be checked before mounting (nothing is forked or mounted
/// when any fails), then mounts. The command line first, then what the user named, then
/// the system, so that a typo is reported as such on any machine.
fn mount(
    image: &Path,
    mountpoint: &Path,
    option_args: &[String],
    trust_args: &TrustArgs,
    foreground: bool,
) -> Result<(), Fatal> {
    let parsed = options::parse(option_args).map_err(|e| Fatal::usage(e.to_string()))?;
    for (given, option) in [
        (parsed.require_signed, "require_signed"),
        (parsed.verify_drops, "verify_drops"),
    ] {
        if given && !trust_args.any() {
            return Err(Fatal::usage(format!(
                "-o {option} needs something to verify with: give --key or \
                 --certificate-identity and --certificate-oidc-issuer"
            )));
        }
    }
    let trust = if trust_args.any() {
        trust_args.load()?
    } else {
        Default::default()
    };
    // A private key given with --key also signs requests in /cosign/sign/ (the man page,
    // SIGNING); its public half is among the trust's keys already.
    let signing_key = trust_args.signing_key()?;
    let mountpoint = checks::mountpoint(mountpoint)?;
    let writable = !parsed.read_only
        && match why_read_only(image) {
            None => true,
            // An explicit rw is refused, as mount(8) -w is on a write-protected device:
            // a mount made read-only instead would say so only in a log the user never
            // sees. A missing image is left to the open below to report.
            Some(why) if parsed.read_write && image.exists() => {
                return Err(Fatal::failure(format!(
                    "{}: -o rw, but the image cannot be written ({why}); \
                     mount it with -o ro, or without rw",
                    image.display()
                )));
            }
            Some(why) => {
                log::info!("{}: {why}: mounting read-only", image.display());
                false
            }
        };
    let (volume, report) = Volume::open(
        image,
        VolumeOptions {
            tree: TreeOptions {
                trust,
                require_signed: parsed.require_signed,
            },
            writable,
            verify_drops: parsed.verify_drops,
            signing_key,
            max_staged_size: parsed.max_staged.unwrap_or(DEFAULT_MAX_STAGED_SIZE),
            max_staged_files: parsed.max_staged_files.unwrap_or(DEFAULT_MAX_STAGED_FILES),
            // Raised to max_staged when only that was given (the volume does it).
            max_staged_total: parsed.max_staged_total.unwrap_or(DEFAULT_MAX_STAGED_TOTAL),
        },
    )
    .map_err(|e| Fatal::failure(e.to_string()))?;
    for warning in &report.warnings {
        log::warn!("{warning}");
    }
    if !parsed.nonempty {
        checks::empty_mountpoint(&mountpoint)?;
    }
    checks::fuse_device()?;
    checks::fusermount_when_needed()?;

    let defaults = options::Defaults {
        uid: sifmount::sys::uid(),
        gid: sifmount::sys::gid(),
        // Canonical, so that the mount table says which file it is whatever the cwd was.
        fsname: image
            .canonicalize()
            .or_else(|_| std::path::absolute(image))
            .unwrap_or_else(|_| image.to_path_buf())
            .display()
            .to_string(),
        threads: options::default_threads(
            std::thread::available_parallelism().ok().map(|n| n.get()),
        ),
    };
    let request = daemon::Request {
        image: image.to_path_buf(),
        mountpoint,
        options: parsed.into_mount_options(defaults),
    };
    log::debug!("mount options: {:?}", request.options);
    if foreground {
        daemon::foreground(volume, &request)
    } else {
        daemon::background(volume, &request)
    }
}

/// `--verify IMAGE`: the blobs, then (with a key or identity) the signatures.
fn verify(image: &Path, cli: &Cli) -> Result<ExitCode, Fatal> {
    let trust = if cli.trust.any() {
        Some(cli.trust.load()?)
    } else {
        None
    };
    let json = cli.output.as_deref() == Some("json");
    if trust.is_none() && (cli.select_image.is_some() || json) {
        return Err(Fatal::usage(
            "--image and --output choose which signatures --verify checks and how it says \
             so: give --key or a certificate identity too",
        ));
    }
    // With JSON on standard output, what people read goes to standard error.
    let mut text: Box<dyn Write> = if json {
        Box::new(std::io::stderr())
    } else {
        Box::new(Stdout)
    };
    let blobs = inspect::verify(image, &mut *text).map_err(|e| Fatal::failure(e.to_string()))?;
    let Some(trust) = trust else {
        return Ok(blobs);
    };
    let request = signatures::Request {
        image,
        trust,
        select: cli.select_image.as_deref(),
        json,
    };
    let signed = signatures::check(request, &mut *text, &mut Stdout)?;
    Ok(if blobs == ExitCode::SUCCESS && signed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--sign IMAGE`: exactly one `--key`, a private key, and nothing else of the trust
/// options; the key (and its password) is read before the image is touched.
fn sign(image: &Path, cli: &Cli) -> Result<ExitCode, Fatal> {
    let t = &cli.trust;
    let key_path = match t.keys.as_slice() {
        [one] => one,
        [] => {
            return Err(Fatal::usage(
                "--sign needs --key KEY, the private key to sign with",
            ))
        }
        _ => return Err(Fatal::usage("--sign signs with one --key")),
    };
    if t.certificate_identity.is_some()
        || t.certificate_identity_regexp.is_some()
        || t.certificate_oidc_issuer.is_some()
        || t.certificate_oidc_issuer_regexp.is_some()
        || t.trusted_root.is_some()
        || t.insecure_ignore_tlog
    {
        return Err(Fatal::usage(
            "--sign signs with a key: the certificate options, --trusted-root and \
             --insecure-ignore-tlog are for verifying",
        ));
    }
    // Usage errors before the password is asked for.
    sign::parse_annotations(&cli.annotations)?;
    if !keys::is_private_key_file(key_path) {
        // The loader says what the file is instead (missing, a public key, not PEM).
        keys::load_signing_key(key_path)?;
    }
    let Some(key) = t.signing_key()? else {
        return Err(Fatal::failure(format!(
            "{}: not a private key",
            key_path.display()
        )));
    };
    let request = sign::Request {
        image,
        key: &key,
        annotations: &cli.annotations,
        select: cli.select_image.as_deref(),
        recursive: cli.recursive,
    };
    sign::sign(request, &mut Stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// `--recover IMAGE`: says what was found and done, one line.
fn recover(image: &Path) -> Result<ExitCode, Fatal> {
    use sifmount::sif::{RecoveryOutcome, SifImage, WriterLock};
    // Never under a live writer's feet: a read-write mount recovers by itself anyway.
    let _lock = WriterLock::acquire(image).map_err(|e| Fatal::failure(e.to_string()))?;
    let outcome = SifImage::recover(image).map_err(|e| Fatal::failure(e.to_string()))?;
    let what = match outcome {
        RecoveryOutcome::Nothing => "no interrupted update: nothing to do",
        RecoveryOutcome::RolledForward => "an interrupted update was completed",
        RecoveryOutcome::RolledBack => "an interrupted update was undone",
        RecoveryOutcome::DiscardedTornJournal => {
            "a journal torn before its update began was removed; the image is unchanged"
        }
    };
    println!("{}: {what}", image.display());
    Ok(ExitCode::SUCCESS)
}

/// Standard output that treats a closed pipe (`sifmount --inspect x | head`) as the end
/// of the output rather than an error.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::io::stdout().lock().write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match std::io::stdout().lock().flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

/// Keeps every thread's allocations in one glibc arena. A read-write mount rebuilds its
/// tree in whichever FUSE thread runs the commit; with an arena per thread, each arena
/// kept a tree's worth of pages, and a mount of 10,000 blobs grew from 25 to 58 MB
/// resident in three attaches. The threads allocate little besides, so sharing one
/// arena's lock costs nothing measurable.
fn one_malloc_arena() {
    sifmount::sys::one_malloc_arena();
}
