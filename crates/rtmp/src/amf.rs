//! A bounded AMF0 reader for commands from untrusted peers.
//!
//! rml_amf0 recurses once per nesting level with no limit, so a few
//! kilobytes of nested objects would overflow the stack. This reader keeps
//! only what commands need, stops at [`MAX_DEPTH`] and never reads past the
//! input.

use rml_rtmp::rml_amf0::Amf0Value;

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 8;
/// Most values read from one message (properties included).
const MAX_VALUES: usize = 1024;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    values: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, len: usize) -> Option<String> {
        self.take(len)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    fn properties(&mut self, depth: usize) -> Option<Vec<(String, Amf0Value)>> {
        let mut props = Vec::new();
        loop {
            let len = usize::from(self.u16()?);
            if len == 0 && self.data.get(self.pos) == Some(&0x09) {
                self.pos += 1;
                return Some(props);
            }
            let key = self.string(len)?;
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }

    fn value(&mut self, depth: usize) -> Option<Amf0Value> {
        self.values += 1;
        if depth > MAX_DEPTH || self.values > MAX_VALUES {
            return None;
        }
        Some(match self.u8()? {
            0x00 => Amf0Value::Number(f64::from_bits(u64::from_be_bytes(
                self.take(8)?.try_into().ok()?,
            ))),
            0x01 => Amf0Value::Boolean(self.u8()? != 0),
            0x02 => {
                let len = usize::from(self.u16()?);
                Amf0Value::Utf8String(self.string(len)?)
            }
            0x03 => Amf0Value::Object(self.properties(depth)?.into_iter().collect()),
            0x05 => Amf0Value::Null,
            0x06 => Amf0Value::Undefined,
            0x08 => {
                let _count = self.u32()?;
                Amf0Value::Object(self.properties(depth)?.into_iter().collect())
            }
            0x0A => {
                let count = self.u32()? as usize;
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            0x0B => {
                let ms = f64::from_bits(u64::from_be_bytes(self.take(8)?.try_into().ok()?));
                let _tz = self.u16()?;
                Amf0Value::Number(ms)
            }
            0x0C => {
                let len = self.u32()? as usize;
                Amf0Value::Utf8String(self.string(len)?)
            }
            _ => return None,
        })
    }
}

/// Reads every top-level value; None if anything is malformed or too deep.
pub fn decode_all(data: &[u8]) -> Option<Vec<Amf0Value>> {
    let mut r = Reader {
        data,
        pos: 0,
        values: 0,
    };
    let mut out = Vec::new();
    while r.pos < data.len() {
        out.push(r.value(0)?);
    }
    Some(out)
}

/// A command: name, transaction id, command object, further arguments.
pub type Command = (String, f64, Amf0Value, Vec<Amf0Value>);

/// Decodes an AMF0 command message; None if it is not one.
pub fn decode_command(data: &[u8]) -> Option<Command> {
    let mut it = decode_all(data)?.into_iter();
    let Amf0Value::Utf8String(name) = it.next()? else {
        return None;
    };
    let txn = match it.next() {
        Some(Amf0Value::Number(n)) => n,
        _ => 0.0,
    };
    let object = it.next().unwrap_or(Amf0Value::Null);
    Some((name, txn, object, it.collect()))
}

/// Serialises values with rml_amf0 (our own values only: never fails in practice).
pub fn encode(values: Vec<Amf0Value>) -> Vec<u8> {
    rml_rtmp::rml_amf0::serialize(&values).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_what_rml_amf0_writes() {
        let mut obj = HashMap::new();
        obj.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
        obj.insert("n".to_string(), Amf0Value::Number(3.0));
        let bytes = encode(vec![
            Amf0Value::Utf8String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(obj.clone()),
            Amf0Value::Null,
            Amf0Value::Boolean(true),
        ]);
        let (name, txn, object, args) = decode_command(&bytes).expect("decodes");
        assert_eq!((name.as_str(), txn), ("connect", 1.0));
        assert_eq!(object, Amf0Value::Object(obj));
        assert_eq!(args, vec![Amf0Value::Null, Amf0Value::Boolean(true)]);
    }

    #[test]
    fn deep_truncated_and_unknown_input_is_refused() {
        let mut deep = vec![0x02, 0, 1, b'x', 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        for _ in 0..10_000 {
            deep.extend([0x03, 0, 1, b'k']);
        }
        assert!(decode_command(&deep).is_none());
        assert!(decode_command(&[0x02, 0, 9, b'a']).is_none());
        assert!(decode_command(&[0x11]).is_none());
        assert!(decode_command(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF]).is_none());
    }
}
