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

/// Every used descriptor, in slot order.
pub fn descriptors(sif: &SifImage) -> Vec<u8> {
    let list: Vec<Value> = sif.descriptors().map(|(s, d)| descriptor(s, d)).collect();
    pretty(&Value::Array(list))
}
