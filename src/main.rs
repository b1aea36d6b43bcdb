//! The `sifmount` command line (DESIGN.md §5).
//!
//! This version inspects and verifies SIF / OCI-SIF images; mounting arrives in a later
//! version, and asking for it says so instead of pretending.

mod inspect;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Exit status for command-line usage errors (clap uses the same).
const EXIT_USAGE: u8 = 2;

/// Mount SIF / OCI-SIF container images as plain files.
///
/// This version can inspect an image (--inspect) and verify the digests of its OCI blobs
/// (--verify). Mounting (sifmount IMAGE MOUNTPOINT) is not available yet.
#[derive(Debug, Parser)]
#[command(name = "sifmount", version, arg_required_else_help = true)]
#[command(override_usage = "sifmount [-d] --inspect IMAGE\n       \
                            sifmount [-d] --verify IMAGE\n       \
                            sifmount [-d] IMAGE MOUNTPOINT   (not available yet)")]
struct Cli {
    /// Print the SIF header, every used descriptor and, for an OCI-SIF, the root index.
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["verify", "image"])]
    inspect: Option<PathBuf>,

    /// Check that every OCI blob hashes to the digest its descriptor records.
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["inspect", "image"])]
    verify: Option<PathBuf>,

    /// Turn on debug logging (RUST_LOG, when set, takes precedence).
    #[arg(short, long)]
    debug: bool,

    /// The SIF image to mount (not available in this version).
    #[arg(value_name = "IMAGE", requires = "mountpoint")]
    image: Option<PathBuf>,

    /// Where to mount it (not available in this version).
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);

    let result = if let Some(image) = &cli.inspect {
        inspect::inspect(image, &mut Stdout)
    } else if let Some(image) = &cli.verify {
        inspect::verify(image, &mut Stdout)
    } else {
        // clap guarantees IMAGE and MOUNTPOINT here (arg_required_else_help, requires).
        eprintln!(
            "sifmount: mounting is not available in this version yet (sifmount {} can \
             only --inspect or --verify an image); nothing was mounted",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::from(EXIT_USAGE);
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sifmount: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Default level warn, debug with `-d`; `RUST_LOG` overrides both.
fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default)).init();
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
