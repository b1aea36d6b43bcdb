//! `/sif/header.json` and `/sif/descriptors.json`: the raw SIF structures as JSON, every
//! stored field with its value, plus the readable names `siftool` prints.

use serde_json::{json, Value};

use crate::sif::{format_uuid, Descriptor, Header, Link, SifImage};

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

/// Every used descriptor, in slot order: a pretty-printed JSON array, written one element
/// at a time so that a 10,000-object image never holds the whole document as JSON values.
pub fn descriptors(sif: &SifImage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut any = false;
    out.push(b'[');
    for (s, d) in sif.descriptors() {
        out.extend_from_slice(if any { b",\n" } else { b"\n" });
        any = true;
        let element = serde_json::to_vec_pretty(&descriptor(s, d))
            .expect("serializing a serde_json::Value to memory cannot fail");
        // Indent the element by one level, as pretty-printing the whole array would.
        for line in element.split(|&b| b == b'\n') {
            out.extend_from_slice(b"  ");
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.pop();
    }
    out.extend_from_slice(if any { b"\n]\n" } else { b"]\n" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sif::{CreateOptions, DataType, MemStorage, ObjectInput};

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
            assert_eq!(
                String::from_utf8(descriptors(&sif)).unwrap(),
                String::from_utf8(pretty(&Value::Array(list))).unwrap(),
                "{count} objects"
            );
        }
    }
}
