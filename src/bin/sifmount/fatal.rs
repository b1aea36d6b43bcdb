//! How the command line fails: one line and an exit status.

/// Exit status for failures: the image, the mountpoint, the system.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for command-line usage errors (clap uses the same).
pub const EXIT_USAGE: u8 = 2;

/// A failure that ends the program: a one-line message and the exit status.
#[derive(Debug)]
pub struct Fatal {
    pub status: u8,
    pub message: String,
}

impl Fatal {
    pub fn failure(message: impl Into<String>) -> Self {
        Fatal {
            status: EXIT_FAILURE,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Fatal {
            status: EXIT_USAGE,
            message: message.into(),
        }
    }
}

/// Joins the lines of a message from elsewhere (fusermount3's stderr) so that every error
/// stays one line.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
