//! `/sif/header.json` and `/sif/descriptors.json`: the raw SIF structures as JSON, every
//! stored field with its value, plus the readable names `siftool` prints.

use serde_json::{json, Value};

use crate::sif::{
    for_each_used_descriptor, format_uuid, Descriptor, Header, Link, SifError, Storage,
};

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value)
        .expect("serializing a serde_json::Value to memory cannot fail");
    out.push(b'\n');
    out
}

pub fn header(h: &Header) -> Vec<u8> {
    pretty(&json!({
        "launchScript": text(&h.launch_script),
        "magic": text(&h.magic),
        "version": text(&h.version),
        "arch": text(&h.arch),
        "archName": h.arch_name(),
        "id": format_uuid(&h.id),
        "createdAt": h.created_at,
        "modifiedAt": h.modified_at,
        "descriptorsFree": h.descriptors_free,
        "descriptorsTotal": h.descriptors_total,
        "descriptorsOffset": h.descriptors_offset,
        "descriptorsSize": h.descriptors_size,
        "dataOffset": h.data_offset,
        "dataSize": h.data_size,
    }))
}

/// The document's element as a JSON value: the shape [`Shown`] must serialize to (the
/// tests compare them).
#[cfg(test)]
fn descriptor(slot: usize, d: &Descriptor) -> Value {
    let link = match d.link() {
        Link::None => Value::Null,
        Link::Object(id) => json!({ "object": id }),
        Link::Group(id) => json!({ "group": id }),
    };
    json!({
        "slot": slot,
        "id": d.id,
        "dataType": d.data_type_raw,
        "type": d.data_type().display_name(),
        "groupId": d.group_id(),
        "link": link,
        "offset": d.offset,
        "size": d.size,
        "sizeWithPadding": d.size_with_padding,
        "createdAt": d.created_at,
        "modifiedAt": d.modified_at,
        "uid": d.uid,
        "gid": d.gid,
        "name": d.name(),
        "extra": d.describe_extra(),
    })
}

/// One descriptor as `descriptors.json` shows it: the fields of [`descriptor`], in its
/// order, serialized without building JSON values.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Shown {
    slot: usize,
    id: u32,
    data_type: i32,
    #[serde(rename = "type")]
    type_name: &'static str,
    group_id: u32,
    link: Option<ShownLink>,
    offset: i64,
    size: i64,
    size_with_padding: i64,
    created_at: i64,
    modified_at: i64,
    uid: i64,
    gid: i64,
    name: String,
    extra: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum ShownLink {
    Object(u32),
    Group(u32),
}

impl Shown {
    fn of(slot: usize, d: &Descriptor) -> Shown {
        Shown {
            slot,
            id: d.id,
            data_type: d.data_type_raw,
            type_name: d.data_type().display_name(),
            group_id: d.group_id(),
            link: match d.link() {
                Link::None => None,
                Link::Object(id) => Some(ShownLink::Object(id)),
                Link::Group(id) => Some(ShownLink::Group(id)),
            },
            offset: d.offset,
            size: d.size,
            size_with_padding: d.size_with_padding,
            created_at: d.created_at,
            modified_at: d.modified_at,
            uid: d.uid,
            gid: d.gid,
            name: d.name(),
            extra: d.describe_extra(),
        }
    }
}

/// Every used descriptor of the image in a storage, as one JSON array, read from the
/// table as it is serialized (see [`for_each_used_descriptor`]).
struct ShownList<'a>(&'a dyn Storage);

impl serde::Serialize for ShownList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        let mut failed = None;
        for_each_used_descriptor(self.0, |slot, d| {
            if failed.is_none() {
                failed = seq.serialize_element(&Shown::of(slot, d)).err();
            }
        })
        .map_err(S::Error::custom)?;
        match failed {
            Some(e) => Err(e),
            None => seq.end(),
        }
    }
}

/// Counts bytes instead of keeping them.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every used descriptor of the image in `storage`, in slot order, as pretty-printed
/// JSON with a final newline. Only the document is held, never the decoded table.
pub fn descriptors(storage: &dyn Storage) -> Result<Vec<u8>, SifError> {
    let mut out = Vec::new();
    serde_json::to_writer_pretty(&mut out, &ShownList(storage)).map_err(table_error)?;
    out.push(b'\n');
    Ok(out)
}

/// The length of [`descriptors`], found without keeping the document: a `stat` must know
/// it, and the document is megabytes for a large image yet seldom read.
pub fn descriptors_len(storage: &dyn Storage) -> Result<u64, SifError> {
    let mut count = Counter(0);
    serde_json::to_writer_pretty(&mut count, &ShownList(storage)).map_err(table_error)?;
    Ok(count.0 + 1)
}

/// Serializing plain fields cannot fail, so an error is the table's (a failed read).
fn table_error(e: serde_json::Error) -> SifError {
    SifError::io(
        "cannot read descriptor table",
        std::io::Error::other(e.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sif::{CreateOptions, DataType, MemStorage, ObjectInput, SifImage};

    /// The streamed document is exactly what pretty-printing the whole array gives.
    #[test]
    fn descriptors_stream_as_one_pretty_array() {
        for count in [0usize, 1, 3] {
            let objects: Vec<ObjectInput<'_>> = (0..count)
                .map(|i| ObjectInput::new(DataType::Generic, &b"abc"[..i]).name(format!("o{i}")))
                .collect();
            let sif = SifImage::create(
                Box::new(MemStorage::new(Vec::new())),
                &CreateOptions::deterministic(),
                objects,
            )
            .unwrap();
            let list: Vec<Value> = sif.descriptors().map(|(s, d)| descriptor(s, d)).collect();
            let storage = sif.into_storage();
            let doc = descriptors(&*storage).unwrap();
            assert_eq!(
                String::from_utf8(doc.clone()).unwrap(),
                String::from_utf8(pretty(&Value::Array(list))).unwrap(),
                "{count} objects"
            );
            assert_eq!(descriptors_len(&*storage).unwrap(), doc.len() as u64);
        }
    }
}
