//! Opening, validating and changing a SIF image (docs/FORMAT.md, Header).
//!
//! Every change follows the reference library's write order: object bytes first, then the
//! whole descriptor table, then the header. Checks that can fail are made before anything
//! is written, so an operation that returns an error has not changed the image.
//!
//! Here are the reference library's operations on one type (open, create, add, delete,
//! set, with their checks). Apart from them: the checks of a header and table read from
//! storage (`validate.rs`), how a change becomes atomic and durable (`journal.rs`), table
//! growth (`grow.rs`) and slot bookkeeping (`slots.rs`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::descriptor::{
    part_type, DataType, Descriptor, Extra, Link, DESCRIPTOR_SIZE, GROUP_MASK,
};
use super::digest::{Digest, Hasher};
use super::error::{Result, SifError};
use super::header::{Header, LAUNCH_SCRIPT_MAX, MAGIC, MAX_DESCRIPTORS, VERSION};
use super::journal_file::FileJournal;
use super::journal_store::Journaling;
use super::slots::Slots;
use super::storage::Storage;
use super::validate::{read_header, read_table, validate_descriptors};
use super::{EXTRA_LEN, NAME_LEN, ZERO_TIME};

/// Slots in a new image unless asked otherwise (the reference library's default).
pub const DEFAULT_CAPACITY: i64 = 48;
/// Where the descriptor table starts in every image the reference library writes.
pub const DEFAULT_DESCRIPTORS_OFFSET: i64 = 4096;

/// Copy buffer for object data.
const COPY_CHUNK: usize = 1 << 20;

/// Where the legacy (v1) writer always started the data section (docs/FORMAT.md, How the reference library changes an image).
const LEGACY_DATA_OFFSET: u64 = 32768;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    ReadOnly,
    ReadWrite,
}

/// Options of [`SifImage::create`] (`CreateContainer` upstream).
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub launch_script: Vec<u8>,
    /// Raw UUID; `None` = a random v4 UUID unless deterministic.
    pub id: Option<[u8; 16]>,
    /// Creation time; `None` = now unless deterministic.
    pub time: Option<i64>,
    pub capacity: i64,
    /// Nil UUID and zero times (what oci-tools always uses).
    pub deterministic: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            launch_script: Vec::new(),
            id: None,
            time: None,
            capacity: DEFAULT_CAPACITY,
            deterministic: false,
        }
    }
}

impl CreateOptions {
    /// Nil UUID, zero times, default capacity.
    pub fn deterministic() -> Self {
        CreateOptions {
            deterministic: true,
            ..Default::default()
        }
    }
}

/// The time written by an add, delete or set.
#[derive(Clone, Copy, Debug, Default)]
pub enum ChangeTime {
    /// Now, or the zero time when the image is deterministic (the upstream default).
    #[default]
    Auto,
    /// The zero time (`OptAddDeterministic` and friends).
    Zero,
    /// A given Unix time (`OptAddWithTime`).
    At(i64),
}

pub type AddOptions = ChangeTime;
pub type SetOptions = ChangeTime;

/// Options of [`SifImage::delete_objects`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteOptions {
    /// Overwrite the object's bytes with zeros.
    pub zero: bool,
    /// Recompute the data size and truncate the file after the last remaining object.
    pub compact: bool,
    pub time: ChangeTime,
}

/// An object to add: its bytes and descriptor fields (`DescriptorInput` upstream).
pub struct ObjectInput<'a> {
    data_type: DataType,
    data: Box<dyn Read + 'a>,
    group_id: u32,
    link: Link,
    name: Vec<u8>,
    extra: Option<Extra>,
    alignment: Option<i64>,
    time: Option<i64>,
}

impl<'a> ObjectInput<'a> {
    /// An object in group 1 with no link, name or metadata, default alignment.
    pub fn new(data_type: DataType, data: impl Read + 'a) -> ObjectInput<'a> {
        ObjectInput {
            data_type,
            data: Box::new(data),
            group_id: 1,
            link: Link::None,
            name: Vec::new(),
            extra: None,
            alignment: None,
            time: None,
        }
    }

    /// A partition object (file system type, role, Go architecture name).
    pub fn partition(
        data: impl Read + 'a,
        fs_type: i32,
        part_type: i32,
        arch: &str,
    ) -> Result<ObjectInput<'a>> {
        Ok(ObjectInput::new(DataType::Partition, data)
            .extra(Extra::partition(fs_type, part_type, arch)?))
    }

    /// Group `g`; 0 means no group.
    pub fn group(mut self, g: u32) -> Self {
        self.group_id = g;
        self
    }
    pub fn link(mut self, link: Link) -> Self {
        self.link = link;
        self
    }
    pub fn name(mut self, name: impl Into<Vec<u8>>) -> Self {
        self.name = name.into();
        self
    }
    pub fn extra(mut self, extra: Extra) -> Self {
        self.extra = Some(extra);
        self
    }
    /// Alignment of the object's absolute offset; 0 or less = none.
    pub fn alignment(mut self, a: i64) -> Self {
        self.alignment = Some(a);
        self
    }
    /// Object creation/modification time, independent of the header time.
    pub fn time(mut self, t: i64) -> Self {
        self.time = Some(t);
        self
    }

    fn check(&self) -> Result<()> {
        if self.name.len() > NAME_LEN {
            return Err(SifError::TooLong {
                what: "object name",
                len: self.name.len(),
                max: NAME_LEN,
            });
        }
        if let Some(Extra::Other(v)) = &self.extra {
            if v.len() > EXTRA_LEN {
                return Err(SifError::TooLong {
                    what: "object metadata",
                    len: v.len(),
                    max: EXTRA_LEN,
                });
            }
        }
        if self.group_id & GROUP_MASK != 0
            || matches!(self.link, Link::Group(g) if g & GROUP_MASK != 0)
        {
            return Err(SifError::InvalidArgument(format!(
                "group IDs must be below {GROUP_MASK:#x}"
            )));
        }
        Ok(())
    }

    fn default_alignment(&self) -> i64 {
        match self.data_type {
            DataType::Partition => 4096,
            _ => 0,
        }
    }

    fn primary_arch(&self) -> Option<[u8; 3]> {
        match &self.extra {
            Some(Extra::Partition {
                part_type: part_type::PRIM_SYS,
                arch,
                ..
            }) if self.data_type == DataType::Partition => Some(*arch),
            _ => None,
        }
    }

    /// The descriptor as the reference library prepares it before placing the object:
    /// used, ID, offset and sizes zero; times the object time or `t`. OCI extras hold the
    /// digest of `digest_of`.
    pub fn descriptor_template(&self, t: i64, digest_of: Option<Digest>) -> Descriptor {
        let time = self.time.unwrap_or(t);
        let mut d = Descriptor::unused();
        d.data_type_raw = self.data_type.raw();
        d.group_id_raw = self.group_id | GROUP_MASK;
        d.linked_id_raw = self.link.raw();
        d.created_at = time;
        d.modified_at = time;
        d.name[..self.name.len()].copy_from_slice(&self.name);
        if self.data_type.is_oci() {
            let digest = digest_of.unwrap_or_else(|| Digest::of(b""));
            d.extra = Extra::OciDigest(digest).encode();
        } else if let Some(e) = &self.extra {
            d.extra = e.encode();
        }
        d
    }
}

/// An open SIF image: the header and every descriptor slot in memory, object bytes on
/// storage.
pub struct SifImage {
    pub(super) storage: Box<dyn Storage>,
    pub(super) header: Header,
    /// Every slot of the table, used or not, in table order.
    pub(super) slots: Slots,
    mode: OpenMode,
    /// The update journal and the running transaction (`journal_store.rs`; driven by
    /// `journal.rs`).
    pub(super) journal: Journaling,
}

impl std::fmt::Debug for SifImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SifImage")
            .field("header", &self.header)
            .field("used", &self.used_count())
            .field("mode", &self.mode)
            .finish()
    }
}

impl SifImage {
    /// Opens and validates the image at `path`. Errors name the path. Its update journal
    /// is `<path>.sifmount-journal` ([`SifImage::from_storage_with_journal`]): a read-write
    /// open first completes an update a crash interrupted, a read-only open refuses to
    /// read a half-updated image.
    pub fn open(path: impl AsRef<Path>, mode: OpenMode) -> Result<SifImage> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(mode == OpenMode::ReadWrite)
            .open(path)
            .map_err(|e| SifError::io("cannot open", e).in_file(&shown))?;
        if file
            .metadata()
            .map_err(|e| SifError::io("cannot stat", e).in_file(&shown))?
            .is_dir()
        {
            return Err(SifError::NotSif("is a directory".into()).in_file(&shown));
        }
        if mode == OpenMode::ReadWrite {
            check_single_name(&file).map_err(|e| e.in_file(&shown))?;
        }
        let journal = match FileJournal::for_open_image(path, &file) {
            Ok(j) => j,
            // A reader that cannot look beside the image can only read it as it is.
            Err(e) if mode == OpenMode::ReadOnly => {
                log::warn!("{shown}: cannot look for its update journal ({e}); reading it as is");
                return SifImage::from_storage(Box::new(file), mode).map_err(|e| e.in_file(&shown));
            }
            Err(e) => {
                return Err(SifError::io("cannot look for the update journal", e).in_file(&shown))
            }
        };
        SifImage::from_storage_with_journal(Box::new(file), Box::new(journal), mode)
            .map_err(|e| e.in_file(&shown))
    }

    /// Reads and validates an image on any storage.
    pub fn from_storage(storage: Box<dyn Storage>, mode: OpenMode) -> Result<SifImage> {
        let (header, len) = read_header(&*storage)?;
        let mut slots: Vec<Descriptor> = Vec::with_capacity(header.descriptors_total as usize);
        read_table(&*storage, &header, |chunk| slots.extend_from_slice(chunk))?;
        validate_descriptors(&header, &slots, len)?;

        let image = SifImage {
            storage,
            header,
            slots: Slots::written(slots),
            mode,
            journal: Journaling::default(),
        };
        let free = image.slots.len() as i64 - image.used_count() as i64;
        if free != image.header.descriptors_free {
            log::warn!(
                "header counts {} free descriptors, the table has {free}",
                image.header.descriptors_free
            );
        }
        Ok(image)
    }

    /// Creates a new image at `path` (truncating any file there), as
    /// `CreateContainerAtPath` does; a failed creation removes the file. Later changes to
    /// the returned image are journaled, as after [`SifImage::open`].
    pub fn create_at_path(
        path: impl AsRef<Path>,
        opts: &CreateOptions,
        objects: Vec<ObjectInput<'_>>,
    ) -> Result<SifImage> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        // A journal left by an interrupted update of the file being replaced must never
        // be replayed onto the new one.
        let journal = FileJournal::for_image(path)
            .map_err(|e| SifError::io("cannot look for the update journal", e).in_file(&shown))?;
        journal.clear_if_present().map_err(|e| {
            SifError::io(
                format!(
                    "cannot remove the old update journal {}",
                    journal.path().display()
                ),
                e,
            )
            .in_file(&shown)
        })?;
        let file =
            create_file(path).map_err(|e| SifError::io("cannot create", e).in_file(&shown))?;
        let mut image = SifImage::create(Box::new(file), opts, objects).map_err(|e| {
            let _ = std::fs::remove_file(path);
            e.in_file(&shown)
        })?;
        image.journal = Journaling::new(Some(Box::new(journal)));
        Ok(image)
    }

    /// Writes a new image onto empty storage (`CreateContainer`).
    pub fn create(
        storage: Box<dyn Storage>,
        opts: &CreateOptions,
        objects: Vec<ObjectInput<'_>>,
    ) -> Result<SifImage> {
        if opts.launch_script.len() > LAUNCH_SCRIPT_MAX {
            return Err(SifError::TooLong {
                what: "launch script",
                len: opts.launch_script.len(),
                max: LAUNCH_SCRIPT_MAX,
            });
        }
        if !(0..=MAX_DESCRIPTORS).contains(&opts.capacity) {
            return Err(SifError::InvalidArgument(format!(
                "descriptor capacity {} is outside 0..={MAX_DESCRIPTORS}",
                opts.capacity
            )));
        }
        let (id, t) = if opts.deterministic {
            ([0u8; 16], ZERO_TIME)
        } else {
            (
                opts.id.unwrap_or_else(random_uuid),
                opts.time.unwrap_or_else(now),
            )
        };
        let descriptors_size = opts.capacity * DESCRIPTOR_SIZE as i64;
        let header = Header {
            launch_script: super::bytes::fixed(&opts.launch_script),
            magic: *MAGIC,
            version: *VERSION,
            arch: *b"00\0",
            id,
            created_at: t,
            modified_at: t,
            descriptors_free: opts.capacity,
            descriptors_total: opts.capacity,
            descriptors_offset: DEFAULT_DESCRIPTORS_OFFSET,
            descriptors_size,
            data_offset: DEFAULT_DESCRIPTORS_OFFSET + descriptors_size,
            data_size: 0,
        };
        let mut image = SifImage {
            storage,
            header,
            slots: Slots::unwritten(vec![Descriptor::unused(); opts.capacity as usize]),
            mode: OpenMode::ReadWrite,
            journal: Journaling::default(),
        };
        for obj in objects {
            image.place_object(obj, t)?;
        }
        image.write_table_and_header()?;
        Ok(image)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Gives up the header and descriptors in memory, keeping only the bytes: for readers
    /// that have taken what they need from the table (a 10,000-object table is 6 MB).
    pub fn into_storage(self) -> Box<dyn Storage> {
        self.storage
    }

    /// The file (or memory) the image lives in, for positioned reads of object bytes by
    /// callers that resolved the offsets themselves.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// Every slot, used or not, in table order.
    pub fn slots(&self) -> &[Descriptor] {
        &self.slots
    }

    /// Used descriptors with their slot numbers, in slot order.
    pub fn descriptors(&self) -> impl Iterator<Item = (usize, &Descriptor)> {
        self.slots.iter().enumerate().filter(|(_, d)| d.used)
    }

    pub fn used_count(&self) -> usize {
        self.slots.iter().filter(|d| d.used).count()
    }

    pub fn free_slots(&self) -> usize {
        self.slots.len() - self.used_count()
    }

    /// The used descriptor with this ID.
    pub fn descriptor_by_id(&self, id: u32) -> Result<&Descriptor> {
        self.find_one(|d| d.id == id)
    }

    /// The single used descriptor matching `select`; none or several is an error.
    pub fn find_one(&self, select: impl Fn(&Descriptor) -> bool) -> Result<&Descriptor> {
        let mut it = self.descriptors().map(|(_, d)| d).filter(|d| select(d));
        let first = it.next().ok_or(SifError::ObjectNotFound)?;
        if it.next().is_some() {
            return Err(SifError::MultipleObjects);
        }
        Ok(first)
    }

    /// Current length of the underlying file.
    pub fn file_len(&self) -> Result<u64> {
        self.storage
            .len()
            .map_err(|e| SifError::io("cannot read image size", e))
    }

    /// Reads object bytes at `offset` within the object into `buf`; returns how many were
    /// read (fewer only at the end of the object).
    pub fn read_object_at(&self, d: &Descriptor, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let size = d.size as u64;
        if offset >= size {
            return Ok(0);
        }
        let n = buf.len().min((size - offset) as usize);
        self.storage
            .read_exact_at(&mut buf[..n], d.offset as u64 + offset)
            .map_err(|e| SifError::io(format!("cannot read object {}", d.id), e))?;
        Ok(n)
    }

    /// All of an object's bytes (for small objects such as JSON documents).
    pub fn read_object(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; d.size as usize];
        self.read_object_at(d, 0, &mut buf)?;
        Ok(buf)
    }

    /// A streaming reader over an object's bytes.
    pub fn object_reader<'s>(&'s self, d: &Descriptor) -> ObjectReader<'s> {
        ObjectReader {
            storage: self.storage.as_ref(),
            start: d.offset as u64,
            pos: 0,
            size: d.size as u64,
        }
    }

    /// SHA-256 of an object's bytes, streamed.
    pub fn digest_object(&self, d: &Descriptor) -> Result<Digest> {
        let mut h = Hasher::default();
        let mut buf = vec![0u8; COPY_CHUNK.min(d.size.max(0) as usize).max(1)];
        let mut off = 0u64;
        loop {
            let n = self.read_object_at(d, off, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            off += n as u64;
        }
        Ok(h.finish())
    }

    /// Adds an object in the first free slot (`AddObject`). Nothing is written when the
    /// object cannot be added.
    pub fn add_object(&mut self, obj: ObjectInput<'_>, opts: AddOptions) -> Result<u32> {
        self.change(move |s| {
            let t = s.change_time(opts);
            let id = s.place_object(obj, t)?;
            s.header.modified_at = t;
            s.write_table_and_header()?;
            Ok(id)
        })
    }

    /// Deletes every used object that `select` matches (`DeleteObjects`); returns how many.
    pub fn delete_objects(
        &mut self,
        select: impl Fn(&Descriptor) -> bool,
        opts: DeleteOptions,
    ) -> Result<usize> {
        self.change(move |s| {
            let doomed: Vec<usize> = s
                .descriptors()
                .filter(|(_, d)| select(d))
                .map(|(i, _)| i)
                .collect();
            if doomed.is_empty() {
                return Err(SifError::ObjectNotFound);
            }
            let t = s.change_time(opts.time);
            for &i in &doomed {
                let d = &s.slots[i];
                if opts.zero {
                    s.write_zeros(d.offset as u64, d.size as u64)?;
                }
                if d.is_primary_partition() {
                    s.header.arch = *b"00\0";
                }
                s.slots[i] = Descriptor::unused();
                s.header.descriptors_free += 1;
            }
            s.header.modified_at = t;
            if opts.compact {
                let end = s.data_end();
                s.header.data_size = end - s.header.data_offset;
                s.storage
                    .set_len(end as u64)
                    .map_err(|e| SifError::io("cannot truncate image", e))?;
            }
            s.write_table_and_header()?;
            Ok(doomed.len())
        })
    }

    /// Deletes the object with this ID (`DeleteObject`).
    pub fn delete_object(&mut self, id: u32, opts: DeleteOptions) -> Result<()> {
        if id == 0 {
            return Err(SifError::InvalidArgument("object ID 0".into()));
        }
        self.delete_objects(|d| d.id == id, opts).map(|_| ())
    }

    /// Makes a system partition the primary one, demoting any current primary
    /// (`SetPrimPart`).
    pub fn set_primary_partition(&mut self, id: u32, opts: SetOptions) -> Result<()> {
        self.change(|s| {
            let slot = s.slot_of(id)?;
            let (fs, pt, arch) = s.slots[slot]
                .partition()
                .ok_or(SifError::NotPartition { id })?;
            if pt == part_type::PRIM_SYS {
                return Ok(());
            }
            if pt != part_type::SYSTEM {
                return Err(SifError::NotSystemPartition { id, part_type: pt });
            }
            let old = match s.find_one(|d| d.is_primary_partition()) {
                Ok(d) => Some(s.slot_of(d.id)?),
                Err(SifError::ObjectNotFound) => None,
                Err(e) => return Err(e),
            };
            let t = s.change_time(opts);
            if let Some(o) = old {
                let (ofs, _, oarch) = s.slots[o]
                    .partition()
                    .expect("the primary partition is a partition");
                s.set_extra(o, Extra::partition_raw(ofs, part_type::SYSTEM, oarch), t);
            }
            s.set_extra(slot, Extra::partition_raw(fs, part_type::PRIM_SYS, arch), t);
            s.header.arch = arch;
            s.header.modified_at = t;
            s.write_table_and_header()
        })
    }

    /// Replaces an object's metadata (`SetMetadata`).
    pub fn set_metadata(&mut self, id: u32, extra: Extra, opts: SetOptions) -> Result<()> {
        self.change(move |s| {
            if let Extra::Other(v) = &extra {
                if v.len() > EXTRA_LEN {
                    return Err(SifError::TooLong {
                        what: "object metadata",
                        len: v.len(),
                        max: EXTRA_LEN,
                    });
                }
            }
            let slot = s.slot_of(id)?;
            let t = s.change_time(opts);
            s.set_extra(slot, extra, t);
            s.header.modified_at = t;
            s.write_table_and_header()
        })
    }

    /// Records a new digest for an OCI blob or root index without touching its bytes
    /// (`SetOCIBlobDigest`).
    pub fn set_oci_blob_digest(&mut self, id: u32, digest: Digest, opts: SetOptions) -> Result<()> {
        self.change(|s| {
            let slot = s.slot_of(id)?;
            if !s.slots[slot].data_type().is_oci() {
                return Err(SifError::NotOciObject { id });
            }
            let t = s.change_time(opts);
            s.set_extra(slot, Extra::OciDigest(digest), t);
            s.header.modified_at = t;
            s.write_table_and_header()
        })
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> Result<()> {
        self.storage
            .sync()
            .map_err(|e| SifError::io("cannot sync image", e))
    }

    /// The end of the data section as the reference library computes it for appends:
    /// the furthest object end, never before the data offset (docs/FORMAT.md, Where objects go).
    pub fn data_end(&self) -> i64 {
        self.descriptors()
            .map(|(_, d)| d.end())
            .fold(self.header.data_offset, i64::max)
    }

    fn slot_of(&self, id: u32) -> Result<usize> {
        if id == 0 {
            return Err(SifError::InvalidArgument("object ID 0".into()));
        }
        self.descriptors()
            .find(|(_, d)| d.id == id)
            .map(|(i, _)| i)
            .ok_or(SifError::ObjectNotFound)
    }

    fn set_extra(&mut self, slot: usize, extra: Extra, t: i64) {
        let d = &mut self.slots[slot];
        d.extra = extra.encode();
        d.modified_at = t;
    }

    pub(super) fn check_writable(&self) -> Result<()> {
        match self.mode {
            OpenMode::ReadWrite => {
                self.journal.check_usable()?;
                self.check_data_section()
            }
            OpenMode::ReadOnly => Err(SifError::ReadOnly),
        }
    }

    /// New objects go at the data section's end and a compacting delete truncates the file
    /// there (docs/FORMAT.md, Where objects go), so a header no writer produces can turn a change into damage:
    /// a data offset far past the end of the file made an attach extend the file to it
    /// (gigabytes, or an allocation failure in memory), and a data section that ends inside
    /// the descriptor table would have the next object overwrite the table. Such an image
    /// can be read, not changed. The legacy writer's fixed data offset is past the end of
    /// its empty images (docs/FORMAT.md, How the reference library changes an image; they end at their table), and stays allowed.
    fn check_data_section(&self) -> Result<()> {
        let len = self.file_len()?;
        // Validated on open: 0 <= data_offset, and the table lies inside the file.
        if self.header.data_offset as u64 > len.max(LEGACY_DATA_OFFSET) {
            return Err(SifError::InvalidHeader(format!(
                "data offset {} is past the end of the file ({len} bytes); the image can be \
                 read but not changed",
                self.header.data_offset
            )));
        }
        let table_end = self.header.descriptors_offset + self.header.descriptors_size;
        let data_end = self.data_end();
        if data_end < table_end {
            return Err(SifError::InvalidHeader(format!(
                "the data section ends at {data_end}, inside the descriptor table [{}, \
                 {table_end}): new objects would overwrite it; the image can be read but \
                 not changed",
                self.header.descriptors_offset
            )));
        }
        Ok(())
    }

    pub(super) fn change_time(&self, t: ChangeTime) -> i64 {
        match t {
            ChangeTime::At(t) => t,
            ChangeTime::Zero => ZERO_TIME,
            ChangeTime::Auto if self.header.is_deterministic() => ZERO_TIME,
            ChangeTime::Auto => now(),
        }
    }

    /// Writes an object's bytes and fills its slot; the caller writes table and header.
    fn place_object(&mut self, mut obj: ObjectInput<'_>, t: i64) -> Result<u32> {
        obj.check()?;
        let slot = self
            .slots
            .iter()
            .position(|d| !d.used)
            .ok_or(SifError::InsufficientCapacity { free: 0, needed: 1 })?;
        let primary_arch = obj.primary_arch();
        if primary_arch.is_some() && self.slots.iter().any(|d| d.is_primary_partition()) {
            return Err(SifError::PrimaryPartitionExists);
        }
        let end = self.data_end();
        let align = obj.alignment.unwrap_or_else(|| obj.default_alignment());
        let offset = if align > 0 {
            (end + align - 1) / align * align
        } else {
            end
        };
        let (size, digest) = self.copy_in(&mut obj.data, offset as u64, obj.data_type.is_oci())?;

        if let Some(arch) = primary_arch {
            self.header.arch = arch;
        }
        let mut d = obj.descriptor_template(t, digest);
        d.used = true;
        d.id = self.new_object_id(slot);
        d.offset = offset;
        d.size = size as i64;
        d.size_with_padding = offset - end + size as i64;
        self.slots[slot] = d;
        self.header.descriptors_free -= 1;
        self.header.data_size = offset + size as i64 - self.header.data_offset;
        Ok(self.slots[slot].id)
    }

    /// The ID of an object placed in `slot`: the slot number plus one, as the reference
    /// library assigns it, unless another writer gave that ID to an object in another slot
    /// (IDs need only be unique); then the smallest unused one. Reusing it would make the
    /// image fail validation from then on, for sifmount and upstream alike.
    fn new_object_id(&self, slot: usize) -> u32 {
        let natural = u32::try_from(slot + 1).expect("slot count is bounded by MAX_DESCRIPTORS");
        let taken = |id: u32| self.descriptors().any(|(_, d)| d.id == id);
        if !taken(natural) {
            return natural;
        }
        let used: std::collections::HashSet<u32> = self.descriptors().map(|(_, d)| d.id).collect();
        (1..=u32::MAX)
            .find(|id| !used.contains(id))
            .expect("at most MAX_DESCRIPTORS IDs are in use")
    }

    /// Streams `data` to `offset`, hashing it when asked.
    fn copy_in(
        &self,
        data: &mut dyn Read,
        offset: u64,
        hash: bool,
    ) -> Result<(u64, Option<Digest>)> {
        let mut hasher = hash.then(Hasher::default);
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut written = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SifError::io("cannot read object data", e)),
            };
            self.storage
                .write_all_at(&buf[..n], offset + written)
                .map_err(|e| SifError::io("cannot write object data", e))?;
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..n]);
            }
            written += n as u64;
        }
        if written == 0 {
            // An empty object still places the data section end where upstream's
            // zero-extending buffer would.
            self.storage
                .write_all_at(&[], offset)
                .map_err(|e| SifError::io("cannot write object data", e))?;
        }
        Ok((written, hasher.map(Hasher::finish)))
    }

    fn write_zeros(&self, offset: u64, len: u64) -> Result<()> {
        // One call, so that a transaction records a range rather than chunks of zeros.
        self.storage
            .zero_range(offset, len)
            .map_err(|e| SifError::io("cannot zero object data", e))
    }

    /// Writes the slots changed since the table was last written, then the header.
    pub(super) fn write_table_and_header(&mut self) -> Result<()> {
        let runs = self.slots.dirty_runs();
        if runs.is_empty() {
            // What writing a table of no slots did: a new image of capacity 0 still
            // reaches its table's (empty) place, as upstream's does.
            self.storage
                .write_all_at(&[], self.header.descriptors_offset as u64)
                .map_err(|e| SifError::io("cannot write descriptor table", e))?;
        }
        for run in runs {
            let at = self.header.descriptors_offset as u64 + (run.start * DESCRIPTOR_SIZE) as u64;
            let mut table = Vec::with_capacity(run.len() * DESCRIPTOR_SIZE);
            for d in &(*self.slots)[run] {
                table.extend_from_slice(&d.encode());
            }
            self.storage
                .write_all_at(&table, at)
                .map_err(|e| SifError::io("cannot write descriptor table", e))?;
        }
        self.slots.mark_written();
        self.storage
            .write_all_at(&self.header.encode(), 0)
            .map_err(|e| SifError::io("cannot write header", e))
    }
}

/// `Read` over one object's bytes.
pub struct ObjectReader<'s> {
    storage: &'s dyn Storage,
    start: u64,
    pos: u64,
    size: u64,
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.size - self.pos) as usize);
        if n == 0 {
            return Ok(0);
        }
        self.storage
            .read_exact_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Extra {
    fn partition_raw(fs_type: i32, part_type: i32, arch: [u8; 3]) -> Extra {
        Extra::Partition {
            fs_type,
            part_type,
            arch,
        }
    }
}

/// Refuses to write a file with more than one hard link (its journal is found by name).
pub(super) fn check_single_name(file: &File) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let links = file
        .metadata()
        .map_err(|e| SifError::io("cannot stat", e))?
        .nlink();
    if links > 1 {
        return Err(SifError::HardLinked { links });
    }
    Ok(())
}

fn create_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(path)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A random version-4 UUID from the kernel's generator.
fn random_uuid() -> [u8; 16] {
    let mut id = [0u8; 16];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .is_ok();
    if !ok {
        // Without a random source, fall back to time and pid: unique enough for an ID.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        id[..16].copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    }
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}
