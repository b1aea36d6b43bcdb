//! Deliberately broken SIF files: each must be refused with an error that names the
//! problem (and the slot and ID for descriptor problems) — never a panic. Opened by path,
//! the message also names the file.
//!
//! The files are made in the test by mutating the bytes of a small valid image:
//! capacity 4 (table at 4096, 2340 bytes; data at 6436), slot 0 = ID 1 = 12 bytes at
//! 6436, slot 1 = ID 2 = 13 bytes at 6448; 6461 bytes in all.
//!
//! | case                     | change                                         | message must contain |
//! |--------------------------|------------------------------------------------|----------------------|
//! | empty-file               | 0 bytes                                        | `file is 0 bytes, shorter than the 128-byte SIF header` |
//! | truncated-header         | first 100 bytes only                           | `file is 100 bytes` |
//! | bad-magic                | magic `NOT_MAGIC`                              | `not a SIF file`, `NOT_MAGIC` |
//! | bad-version              | version `02`                                   | `unsupported SIF version "02"` |
//! | header-only              | first 128 bytes only                           | `descriptor table`, `past the end of the file (128 bytes)` |
//! | table-past-eof           | file cut at 5000, inside the table             | `descriptor table [4096, +2340)`, `past the end` |
//! | count-2^40               | total 2^40, size 2^40*585                      | `descriptor count 1099511627776` |
//! | count-i64-max            | total i64::MAX                                 | `descriptor count 9223372036854775807` |
//! | negative-total           | total −1                                       | `descriptor count -1` |
//! | negative-free            | free −1                                        | `free descriptor count -1` |
//! | free-over-total          | free 5 of 4                                    | `free descriptor count 5 is outside 0..=4` |
//! | table-size-mismatch      | table size 2341                                | `descriptor table size 2341 is not 4 descriptors` |
//! | table-size-zero          | table size 0 with 4 slots                      | `descriptor table size 0` |
//! | table-over-header        | table offset 64                                | `descriptor table offset 64 overlaps the header` |
//! | negative-table-offset    | table offset −4096                             | `descriptor table offset -4096` |
//! | table-offset-overflow    | table offset i64::MAX − 100                    | `past the end of the file` |
//! | million-slots-small-file | total 2^20 (allowed), table far past EOF       | `descriptor table`, `past the end` |
//! | negative-data-offset     | data offset −1                                 | `negative data offset -1` |
//! | object-past-eof          | slot 1 size 100000                             | `slot 1 (id 2)`, `past the end of the file (6461 bytes)` |
//! | object-offset-past-eof   | slot 0 offset 10^9                             | `slot 0 (id 1)`, `past the end` |
//! | offset-size-overflow     | slot 1 offset i64::MAX − 5, size 13            | `slot 1 (id 2)`, `offset … + size 13 overflows` |
//! | negative-size            | slot 0 size −1                                 | `slot 0 (id 1)`, `negative size -1` |
//! | negative-offset          | slot 1 offset −10                              | `slot 1 (id 2)`, `negative offset -10` |
//! | object-over-table        | slot 0 offset 4200                             | `slot 0 (id 1)`, `overlaps the descriptor table` |
//! | object-over-header       | slot 0 offset 100                              | `slot 0 (id 1)`, `overlaps the header` |
//! | objects-overlap          | slot 1 offset 6440 (inside ID 1)               | `slot 1 (id 2)`, `overlaps object 1 in slot 0` |
//! | duplicate-ids            | slot 1 ID 1                                    | `slot 1 (id 1)`, `object ID 1 is also used by slot 0` |
//! | id-zero                  | slot 0 ID 0                                    | `slot 0 (id 0)`, `object ID is 0` |
//! | slot-3-garbage-used      | slot 3 marked used, all else zero              | `slot 3 (id 0)`, `object ID is 0` |
//! | directory                | a directory instead of a file (both modes)     | `is a directory` (any case) |
//! | missing-file             | no such file                                   | `cannot open`, `No such file` |

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use sifmount::sif::{
    ChangeTime, CreateOptions, DataType, MemStorage, ObjectInput, OpenMode, SifError, SifImage,
    DESCRIPTOR_SIZE, MAX_DESCRIPTORS,
};

// Header field offsets (docs/FORMAT.md, Header).
const MAGIC_AT: usize = 32;
const VERSION_AT: usize = 42;
const FREE: usize = 80;
const TOTAL: usize = 88;
const TABLE_OFFSET: usize = 96;
const TABLE_SIZE: usize = 104;
const DATA_OFFSET: usize = 112;
// Descriptor field offsets (docs/FORMAT.md, Descriptor table).
const USED: usize = 4;
const ID: usize = 5;
const OFFSET: usize = 17;
const SIZE: usize = 25;

/// The valid image every case starts from.
fn base_image() -> Vec<u8> {
    let mem = Arc::new(MemStorage::default());
    let opts = CreateOptions {
        capacity: 4,
        ..CreateOptions::deterministic()
    };
    let objects = vec![
        ObjectInput::new(DataType::Generic, &b"first object"[..]),
        ObjectInput::new(DataType::Generic, &b"second object"[..]),
    ];
    let image = SifImage::create(Box::new(Arc::clone(&mem)), &opts, objects).unwrap();
    let (a, b) = (
        image.descriptor_by_id(1).unwrap(),
        image.descriptor_by_id(2).unwrap(),
    );
    assert_eq!((a.offset, a.size, b.offset, b.size), (6436, 12, 6448, 13));
    drop(image);
    mem.to_vec()
}

fn put_i64(b: &mut [u8], at: usize, v: i64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Offset of a field of the descriptor in `slot`.
fn slot(slot: usize, field: usize) -> usize {
    4096 + slot * DESCRIPTOR_SIZE + field
}

enum Source {
    /// The base image changed by a function.
    Bytes(fn(&mut Vec<u8>)),
    Directory,
    Missing,
}

struct Case {
    name: &'static str,
    source: Source,
    /// Every one of these must appear in the message.
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    use Source::*;
    let case = |name, source, expect| Case {
        name,
        source,
        expect,
    };
    vec![
        case(
            "empty-file",
            Bytes(|b| b.clear()),
            &["file is 0 bytes, shorter than the 128-byte SIF header"],
        ),
        case(
            "truncated-header",
            Bytes(|b| b.truncate(100)),
            &["not a SIF file", "file is 100 bytes"],
        ),
        case(
            "bad-magic",
            Bytes(|b| b[MAGIC_AT..MAGIC_AT + 10].copy_from_slice(b"NOT_MAGIC\0")),
            &["not a SIF file", "bad magic", "NOT_MAGIC"],
        ),
        case(
            "bad-version",
            Bytes(|b| b[VERSION_AT..VERSION_AT + 3].copy_from_slice(b"02\0")),
            &["unsupported SIF version \"02\""],
        ),
        case(
            "header-only",
            Bytes(|b| b.truncate(128)),
            &["descriptor table", "past the end of the file (128 bytes)"],
        ),
        case(
            "table-past-eof",
            Bytes(|b| b.truncate(5000)),
            &[
                "descriptor table [4096, +2340)",
                "past the end of the file (5000 bytes)",
            ],
        ),
        case(
            "count-2^40",
            Bytes(|b| {
                put_i64(b, TOTAL, 1 << 40);
                put_i64(b, TABLE_SIZE, (1 << 40) * DESCRIPTOR_SIZE as i64);
            }),
            &[
                "invalid SIF header",
                "descriptor count 1099511627776 is outside",
            ],
        ),
        case(
            "count-i64-max",
            Bytes(|b| put_i64(b, TOTAL, i64::MAX)),
            &["descriptor count 9223372036854775807 is outside"],
        ),
        case(
            "negative-total",
            Bytes(|b| put_i64(b, TOTAL, -1)),
            &["descriptor count -1 is outside"],
        ),
        case(
            "negative-free",
            Bytes(|b| put_i64(b, FREE, -1)),
            &["free descriptor count -1 is outside 0..=4"],
        ),
        case(
            "free-over-total",
            Bytes(|b| put_i64(b, FREE, 5)),
            &["free descriptor count 5 is outside 0..=4"],
        ),
        case(
            "table-size-mismatch",
            Bytes(|b| put_i64(b, TABLE_SIZE, 2341)),
            &["descriptor table size 2341 is not 4 descriptors x 585 bytes = 2340"],
        ),
        case(
            "table-size-zero",
            Bytes(|b| put_i64(b, TABLE_SIZE, 0)),
            &["descriptor table size 0 is not 4 descriptors"],
        ),
        case(
            "table-over-header",
            Bytes(|b| put_i64(b, TABLE_OFFSET, 64)),
            &["descriptor table offset 64 overlaps the header"],
        ),
        case(
            "negative-table-offset",
            Bytes(|b| put_i64(b, TABLE_OFFSET, -4096)),
            &["descriptor table offset -4096 overlaps the header"],
        ),
        case(
            "table-offset-overflow",
            Bytes(|b| put_i64(b, TABLE_OFFSET, i64::MAX - 100)),
            &[
                "descriptor table [9223372036854775707, +2340)",
                "past the end of the file",
            ],
        ),
        case(
            "million-slots-small-file",
            Bytes(|b| {
                put_i64(b, TOTAL, MAX_DESCRIPTORS);
                put_i64(b, FREE, MAX_DESCRIPTORS);
                put_i64(b, TABLE_SIZE, MAX_DESCRIPTORS * DESCRIPTOR_SIZE as i64);
            }),
            &[
                "descriptor table [4096, +613416960)",
                "past the end of the file (6461 bytes)",
            ],
        ),
        case(
            "negative-data-offset",
            Bytes(|b| put_i64(b, DATA_OFFSET, -1)),
            &["negative data offset -1"],
        ),
        case(
            "object-past-eof",
            Bytes(|b| put_i64(b, slot(1, SIZE), 100_000)),
            &[
                "descriptor in slot 1 (id 2)",
                "object [6448, +100000) extends past the end of the file (6461 bytes)",
            ],
        ),
        case(
            "object-offset-past-eof",
            Bytes(|b| put_i64(b, slot(0, OFFSET), 1_000_000_000)),
            &[
                "slot 0 (id 1)",
                "object [1000000000, +12) extends past the end",
            ],
        ),
        case(
            "offset-size-overflow",
            Bytes(|b| put_i64(b, slot(1, OFFSET), i64::MAX - 5)),
            &[
                "slot 1 (id 2)",
                "offset 9223372036854775802 + size 13 overflows",
            ],
        ),
        case(
            "negative-size",
            Bytes(|b| put_i64(b, slot(0, SIZE), -1)),
            &["slot 0 (id 1)", "negative size -1"],
        ),
        case(
            "negative-offset",
            Bytes(|b| put_i64(b, slot(1, OFFSET), -10)),
            &["slot 1 (id 2)", "negative offset -10"],
        ),
        case(
            "object-over-table",
            Bytes(|b| put_i64(b, slot(0, OFFSET), 4200)),
            &[
                "slot 0 (id 1)",
                "object [4200, 4212) overlaps the descriptor table [4096, 6436)",
            ],
        ),
        case(
            "object-over-header",
            Bytes(|b| put_i64(b, slot(0, OFFSET), 100)),
            &["slot 0 (id 1)", "object at 100 overlaps the header"],
        ),
        case(
            "objects-overlap",
            Bytes(|b| put_i64(b, slot(1, OFFSET), 6440)),
            &[
                "slot 1 (id 2)",
                "object [6440, 6453) overlaps object 1 in slot 0",
            ],
        ),
        case(
            "duplicate-ids",
            Bytes(|b| put_u32(b, slot(1, ID), 1)),
            &["slot 1 (id 1)", "object ID 1 is also used by slot 0"],
        ),
        case(
            "id-zero",
            Bytes(|b| put_u32(b, slot(0, ID), 0)),
            &["slot 0 (id 0)", "object ID is 0"],
        ),
        case(
            "slot-3-garbage-used",
            Bytes(|b| b[slot(3, USED)] = 1),
            &["descriptor in slot 3 (id 0)", "object ID is 0"],
        ),
        case("directory", Directory, &["is a directory"]),
        case("missing-file", Missing, &["cannot open", "No such file"]),
    ]
}

/// Runs `f`, turning a panic into an error message naming the case.
fn no_panic<T>(case: &str, how: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let text = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{case}: {how} panicked: {text}")
    })
}

/// Checks one refusal: an error (not an image) whose message has every expected part.
fn check_refusal(
    case: &Case,
    how: &str,
    result: Result<SifImage, SifError>,
    also: Option<&str>,
) -> Result<String, String> {
    let err = match result {
        Ok(image) => return Err(format!("{}: {how} accepted the file: {image:?}", case.name)),
        Err(e) => e,
    };
    let msg = err.to_string();
    let missing: Vec<&str> = case
        .expect
        .iter()
        .copied()
        .chain(also)
        // Case-insensitive: OS messages ("Is a directory") start with a capital.
        .filter(|part| !msg.to_lowercase().contains(&part.to_lowercase()))
        .collect();
    if missing.is_empty() {
        Ok(msg)
    } else {
        Err(format!(
            "{}: {how}: message {msg:?} lacks {missing:?}",
            case.name
        ))
    }
}

fn run_case(case: &Case, base: &[u8], dir: &Path) -> Result<String, String> {
    let path = dir.join(format!("{}.sif", case.name));
    let shown = path.display().to_string();
    match &case.source {
        Source::Bytes(mutate) => {
            let mut bytes = base.to_vec();
            mutate(&mut bytes);

            // In memory: the problem without a path.
            let mem = Box::new(MemStorage::new(bytes.clone()));
            let r = no_panic(case.name, "from_storage", || {
                SifImage::from_storage(mem, OpenMode::ReadOnly)
            })?;
            check_refusal(case, "from_storage", r, None)?;

            // On disk, in both modes: the problem and the path; the file is untouched.
            std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
            let mut msg = String::new();
            for mode in [OpenMode::ReadOnly, OpenMode::ReadWrite] {
                let how = format!("open({mode:?})");
                let r = no_panic(case.name, &how, || SifImage::open(&path, mode))?;
                msg = check_refusal(case, &how, r, Some(&shown))?;
                let after = std::fs::read(&path).map_err(|e| e.to_string())?;
                if after != bytes {
                    return Err(format!("{}: {how} changed the file", case.name));
                }
            }
            Ok(msg)
        }
        Source::Directory => {
            std::fs::create_dir(&path).map_err(|e| e.to_string())?;
            let mut msg = String::new();
            for mode in [OpenMode::ReadOnly, OpenMode::ReadWrite] {
                let how = format!("open({mode:?})");
                let r = no_panic(case.name, &how, || SifImage::open(&path, mode))?;
                msg = check_refusal(case, &how, r, Some(&shown))?;
            }
            Ok(msg)
        }
        Source::Missing => {
            let r = no_panic(case.name, "open", || {
                SifImage::open(&path, OpenMode::ReadOnly)
            })?;
            check_refusal(case, "open", r, Some(&shown))
        }
    }
}

#[test]
fn broken_images_are_refused_with_a_clear_message() {
    let base = base_image();
    // The base itself is fine, in memory and on disk.
    SifImage::from_storage(Box::new(MemStorage::new(base.clone())), OpenMode::ReadOnly)
        .expect("the base image is valid");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.sif");
    std::fs::write(&good, &base).unwrap();
    SifImage::open(&good, OpenMode::ReadOnly).expect("the base image is valid on disk");

    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        match run_case(case, &base, dir.path()) {
            Ok(msg) => eprintln!("{:<26} {msg}", case.name),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} broken images were not refused properly:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
    eprintln!(
        "{} broken images refused, each with a message naming the problem",
        cases.len()
    );
    assert!(cases.len() >= 20);
}

/// The error kinds, for callers that match on them rather than on text.
#[test]
fn broken_images_have_typed_errors() {
    let base = base_image();
    let open = |mutate: fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        mutate(&mut b);
        SifImage::from_storage(Box::new(MemStorage::new(b)), OpenMode::ReadOnly).unwrap_err()
    };
    assert!(matches!(open(|b| b.truncate(10)), SifError::NotSif(_)));
    assert!(matches!(
        open(|b| b[VERSION_AT] = b'9'),
        SifError::UnsupportedVersion(_)
    ));
    assert!(matches!(
        open(|b| put_i64(b, FREE, 99)),
        SifError::InvalidHeader(_)
    ));
    assert!(matches!(
        open(|b| put_u32(b, slot(1, ID), 1)),
        SifError::InvalidDescriptor { slot: 1, id: 1, .. }
    ));

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sif");
    let err = SifImage::open(&missing, OpenMode::ReadOnly).unwrap_err();
    assert!(matches!(err, SifError::File { .. }));
    assert!(
        matches!(err.kind(), SifError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
}

/// What the checks must not refuse: a stale free count only warns (upstream trusts the
/// table for everything but "no objects"), unused slots are never interpreted, and an
/// empty object may sit anywhere.
#[test]
fn tolerated_oddities() {
    let base = base_image();
    let open = |mutate: fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        mutate(&mut b);
        SifImage::from_storage(Box::new(MemStorage::new(b)), OpenMode::ReadOnly)
    };
    open(|b| put_i64(b, FREE, 4)).expect("free count disagreeing with the table");
    open(|b| {
        // Garbage in an unused slot.
        let s = slot(2, 0);
        b[s..s + DESCRIPTOR_SIZE].fill(0xff);
        b[s + USED] = 0;
    })
    .expect("garbage in an unused slot");
    // An empty object added after the last one reopens fine.
    let mem = Arc::new(MemStorage::new(base.clone()));
    let mut image =
        SifImage::from_storage(Box::new(Arc::clone(&mem)), OpenMode::ReadWrite).unwrap();
    let id = image
        .add_object(
            ObjectInput::new(DataType::Generic, std::io::empty()),
            ChangeTime::Auto,
        )
        .unwrap();
    drop(image);
    let image = SifImage::from_storage(Box::new(MemStorage::new(mem.to_vec())), OpenMode::ReadOnly)
        .expect("an empty object");
    assert_eq!(image.descriptor_by_id(id).unwrap().size, 0);
}
