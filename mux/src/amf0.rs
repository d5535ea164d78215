//! The AMF0 values `onMetaData` and `@setDataFrame` need: number, boolean,
//! string and ECMA array.

/// AMF0 type marker of a number (IEEE 754 double).
const NUMBER: u8 = 0x00;
/// AMF0 type marker of a boolean.
const BOOLEAN: u8 = 0x01;
/// AMF0 type marker of a short string.
const STRING: u8 = 0x02;
/// AMF0 type marker of an ECMA (associative) array.
const ECMA_ARRAY: u8 = 0x08;
/// AMF0 object-end marker (after an empty key).
const OBJECT_END: u8 = 0x09;

/// One value of an AMF0 ECMA array.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A string of at most 65 535 bytes (longer ones are cut).
    Str(String),
}

/// Appends an AMF0 number.
pub fn write_number(out: &mut Vec<u8>, v: f64) {
    out.push(NUMBER);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an AMF0 boolean.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(BOOLEAN);
    out.push(u8::from(v));
}

/// Appends an AMF0 string (type marker, 16-bit length, UTF-8 bytes).
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(STRING);
    write_key(out, s);
}

/// A string without its type marker, as object keys are written.
fn write_key(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&bytes[..len]);
}

/// Appends an ECMA array of `(key, value)` pairs.
pub fn write_ecma_array(out: &mut Vec<u8>, entries: &[(&str, Value)]) {
    out.push(ECMA_ARRAY);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (key, value) in entries {
        write_key(out, key);
        match value {
            Value::Number(n) => write_number(out, *n),
            Value::Bool(b) => write_bool(out, *b),
            Value::Str(s) => write_string(out, s),
        }
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_spec() {
        let mut out = Vec::new();
        write_string(&mut out, "onMetaData");
        assert_eq!(&out[..3], &[0x02, 0x00, 10]);
        assert_eq!(&out[3..], b"onMetaData");

        out.clear();
        write_number(&mut out, 1.0);
        assert_eq!(out, [0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);

        out.clear();
        write_ecma_array(&mut out, &[("a", Value::Bool(true))]);
        assert_eq!(out, [0x08, 0, 0, 0, 1, 0, 1, b'a', 0x01, 1, 0, 0, 0x09]);
    }
}
