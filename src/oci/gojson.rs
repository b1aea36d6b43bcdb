//! JSON written the way Go's `encoding/json` writes it (docs/FORMAT.md, The signature image).
//!
//! Digests of manifests and indexes are digests of bytes, so "equivalent" JSON is not
//! enough: field order, escaping and number format must match what SingularityCE, cosign
//! and go-containerregistry produce. Struct fields are written in declaration order by
//! the callers; maps (`serde_json::Value` objects, annotation maps) are written with their
//! keys sorted bytewise, as Go marshals maps.

use serde_json::Value;

/// Appends `s` as a quoted JSON string with Go's escaping: `<`, `>` and `&` become
/// `\u003c`, `\u003e`, `\u0026`, and U+2028/U+2029 are escaped too.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends any JSON value; object keys sorted, as for a Go `map[string]any`.
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(a) => write_array(out, a, write_value),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, &m[k]);
            }
            out.push('}');
        }
    }
}

/// A JSON array, each item written by `item`.
pub fn write_array<T>(out: &mut String, items: &[T], item: impl Fn(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, x);
    }
    out.push(']');
}

/// A string map with sorted keys, as Go writes `map[string]string`.
pub fn write_string_map<'a>(
    out: &mut String,
    m: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    let mut pairs: Vec<(&String, &String)> = m.into_iter().collect();
    pairs.sort();
    out.push('{');
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push('}');
}

/// Numbers: integers as they are; floats as Go formats a float64 (shortest
/// representation, exponent form below 1e-6 and from 1e21 on, `e+NN` style).
fn write_number(out: &mut String, n: &serde_json::Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        out.push_str(&format!("{f}"));
    } else {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mant, exp)) if !exp.starts_with('-') => {
                out.push_str(&format!("{mant}e+{exp}"));
            }
            _ => out.push_str(&s),
        }
    }
}

/// A small builder for Go struct encoding: fields in the order they are added, each
/// preceded by a comma when needed.
pub struct GoObject<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> GoObject<'a> {
    pub fn begin(out: &'a mut String) -> GoObject<'a> {
        out.push('{');
        GoObject { out, first: true }
    }

    /// Writes the key and returns the buffer for the value.
    pub fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, k: &str, v: &str) {
        write_str(self.key(k), v);
    }

    pub fn int(&mut self, k: &str, v: i64) {
        let s = v.to_string();
        self.key(k).push_str(&s);
    }

    /// `omitempty` string.
    pub fn str_opt(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.str(k, v);
        }
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> String {
        let mut s = String::new();
        write_value(&mut s, v);
        s
    }

    #[test]
    fn escapes_like_go() {
        let mut s = String::new();
        write_str(&mut s, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#);
    }

    #[test]
    fn sorts_map_keys_and_formats_numbers() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":[1.5,1e21,0.0000001,2],"B":null}"#).unwrap();
        assert_eq!(enc(&v), r#"{"B":null,"a":[1.5,1e+21,1e-7,2],"b":1}"#);
    }
}
