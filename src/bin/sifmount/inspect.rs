//! `--inspect` and `--verify`: what a SIF holds, printed for people.

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use sifmount::oci::{ImageKind, OciError, OciSif};
use sifmount::sif::{DataType, Descriptor, Link, OpenMode, SifImage, ZERO_TIME};

pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Prints the header, the used descriptors and, for an OCI-SIF, the root index.
pub fn inspect(path: &Path, out: &mut dyn Write) -> Result<ExitCode> {
    let sif = SifImage::open(path, OpenMode::ReadOnly)?;
    log::debug!(
        "{}: {} of {} descriptors in use",
        path.display(),
        sif.used_count(),
        sif.slots().len()
    );
    write_header(&sif, out)?;
    writeln!(out)?;
    write_descriptors(&sif, out)?;
    writeln!(out)?;
    match ImageKind::of(&sif) {
        ImageKind::Native => writeln!(out, "native SIF (no OCI root index)")?,
        ImageKind::Ambiguous { slots } => writeln!(
            out,
            "not an OCI-SIF: the image has {} OCI root indexes (slots {}); an OCI-SIF has \
             exactly one, and SingularityCE treats this file as neither an OCI-SIF nor a \
             usable native SIF",
            slots.len(),
            join(slots.iter().map(usize::to_string), ", ")
        )?,
        ImageKind::OciSif { root_slot } => {
            let oci = OciSif::from_sif(sif).map_err(|e| in_file(e, path))?;
            write_root_index(&oci, root_slot, path, out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Hashes every OCI blob and checks that every blob the root index reaches is stored;
/// mismatches and missing blobs are reported on stderr and make the exit status 1.
pub fn verify(path: &Path, out: &mut dyn Write) -> Result<ExitCode> {
    let oci = OciSif::open(path, OpenMode::ReadOnly)?;
    let total = oci
        .sif()
        .descriptors()
        .filter(|(_, d)| d.data_type() == DataType::OciBlob)
        .count();
    log::debug!("{}: hashing {total} OCI blobs", path.display());
    let bad = oci.verify_blobs().map_err(|e| in_file(e, path))?;
    // Kept until the mismatches are printed: a document that fails to parse is often
    // one of them, and they say more than the parse error does.
    let missing = oci.missing_blobs().map_err(|e| in_file(e, path));
    for m in &bad {
        eprintln!(
            "sifmount: {}: blob in slot {} (id {}) does not match its digest: recorded {}, actual {}",
            path.display(),
            m.slot,
            m.id,
            m.recorded,
            m.actual
        );
    }
    if !bad.is_empty() {
        eprintln!(
            "sifmount: {}: {} of {} failed verification",
            path.display(),
            bad.len(),
            plural(total, "blob")
        );
    }
    let missing = missing?;
    for m in &missing {
        eprintln!(
            "sifmount: {}: blob {} named by {} is missing from the image",
            path.display(),
            m.digest,
            join(m.named_by.iter().map(ToString::to_string), ", ")
        );
    }
    if !missing.is_empty() {
        eprintln!(
            "sifmount: {}: {} missing from the image",
            path.display(),
            plural(missing.len(), "named blob")
        );
    }
    if !bad.is_empty() || !missing.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    writeln!(
        out,
        "{} verified: {}",
        plural(total, "blob"),
        path.display()
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_header(sif: &SifImage, out: &mut dyn Write) -> Result<()> {
    let h = sif.header();
    let script = h.launch_script_bytes();
    let script = if script.is_empty() {
        "(none)".to_string()
    } else {
        format!("{:?}", String::from_utf8_lossy(script))
    };
    let uuid = if h.id == [0; 16] {
        format!("{} (nil)", h.uuid())
    } else {
        h.uuid()
    };
    let used = sif.used_count();
    let rows = [
        ("Launch script", script),
        (
            "Version",
            String::from_utf8_lossy(&h.version)
                .trim_end_matches('\0')
                .to_string(),
        ),
        (
            "Architecture",
            format!("{} (code {})", h.arch_name(), h.arch_code()),
        ),
        ("UUID", uuid),
        ("Created", format_time(h.created_at)),
        ("Modified", format_time(h.modified_at)),
        (
            "Descriptors",
            format!(
                "{used} used, {} free, {} total ({} bytes at offset {})",
                h.descriptors_free, h.descriptors_total, h.descriptors_size, h.descriptors_offset
            ),
        ),
        (
            "Data",
            format!("{} bytes at offset {}", h.data_size, h.data_offset),
        ),
        (
            "Deterministic",
            if h.is_deterministic() { "yes" } else { "no" }.to_string(),
        ),
    ];
    for (k, v) in rows {
        writeln!(out, "{:<15}{v}", format!("{k}:"))?;
    }
    Ok(())
}

fn write_descriptors(sif: &SifImage, out: &mut dyn Write) -> Result<()> {
    let rows: Vec<Vec<String>> = sif.descriptors().map(|(slot, d)| row(slot, d)).collect();
    if rows.is_empty() {
        writeln!(out, "no objects")?;
        return Ok(());
    }
    write_table(
        out,
        &[
            ("SLOT", Align::Right),
            ("ID", Align::Right),
            ("GROUP", Align::Right),
            ("LINK", Align::Left),
            ("TYPE", Align::Left),
            ("OFFSET", Align::Right),
            ("SIZE", Align::Right),
            ("NAME", Align::Left),
            ("EXTRA", Align::Left),
        ],
        &rows,
    )
}

fn row(slot: usize, d: &Descriptor) -> Vec<String> {
    let group = match d.group_id() {
        0 => "-".to_string(),
        g => g.to_string(),
    };
    let link = match d.link() {
        Link::None => "-".to_string(),
        Link::Object(id) => format!("id {id}"),
        Link::Group(g) => format!("group {g}"),
    };
    let kind = match d.data_type() {
        DataType::Unknown(raw) => format!("Unknown ({raw:#x})"),
        t => t.display_name().to_string(),
    };
    vec![
        slot.to_string(),
        d.id.to_string(),
        group,
        link,
        kind,
        d.offset.to_string(),
        d.size.to_string(),
        dash_if_empty(d.name()),
        dash_if_empty(d.describe_extra()),
    ]
}

fn write_root_index(oci: &OciSif, slot: usize, path: &Path, out: &mut dyn Write) -> Result<()> {
    let d = oci.root_index_descriptor();
    writeln!(
        out,
        "OCI root index: slot {slot}, id {}, {} bytes, {}",
        d.id,
        d.size,
        d.describe_extra()
    )?;
    let index = oci.root_index().map_err(|e| in_file(e, path))?;
    let rows: Vec<Vec<String>> = index
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                i.to_string(),
                dash_if_empty(e.media_type.clone()),
                e.size.to_string(),
                e.digest.to_string(),
                e.ref_name().map_or("-".to_string(), str::to_string),
                e.platform.as_ref().map_or("-".to_string(), |p| p.to_path()),
            ]
        })
        .collect();
    if rows.is_empty() {
        writeln!(out, "no entries")?;
    } else {
        write_table(
            out,
            &[
                ("#", Align::Right),
                ("MEDIA TYPE", Align::Left),
                ("SIZE", Align::Right),
                ("DIGEST", Align::Left),
                ("REF NAME", Align::Left),
                ("PLATFORM", Align::Left),
            ],
            &rows,
        )?;
    }
    writeln!(out, "{}", plural(oci.blobs().count(), "OCI blob"))?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell, two spaces apart, no trailing spaces.
fn write_table(out: &mut dyn Write, columns: &[(&str, Align)], rows: &[Vec<String>]) -> Result<()> {
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    for cells in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[i] - cell.chars().count());
            match columns[i].1 {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Errors of `OciSif::from_sif` and of reads through it do not know the file.
fn in_file(e: OciError, path: &Path) -> OciError {
    e.in_file(&path.display().to_string())
}

/// A SIF timestamp (Unix seconds) as a UTC date and time; Go's zero time as "zero time".
pub fn format_time(t: i64) -> String {
    if t == ZERO_TIME {
        return "zero time".to_string();
    }
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s
    }
}

fn join(items: impl Iterator<Item = String>, sep: &str) -> String {
    items.collect::<Vec<_>>().join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(format_time(ZERO_TIME), "zero time");
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_689_330_683), "2023-07-14 10:31:23 UTC");
        assert_eq!(format_time(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(format_time(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_time(ZERO_TIME + 1), "0001-01-01 00:00:01 UTC");
        // Hostile values format without overflow.
        let _ = format_time(i64::MAX);
        let _ = format_time(i64::MIN);
    }
}
