//! A bounded AMF0 reader for commands from untrusted peers.
//!
//! rml_amf0 recurses once per nesting level with no limit, so a few
//! kilobytes of nested objects would overflow the stack. This reader keeps
//! only what commands need, stops at [`MAX_DEPTH`] and [`MAX_VALUES`], and
//! never reads past the input: strings are copies of input bytes (invalid
//! UTF-8 replaced, at most three bytes out per byte in), so what it returns
//! is bounded by the message, which the chunk reader bounds in turn.

use rml_rtmp::rml_amf0::Amf0Value;
use thiserror::Error;

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 8;
/// Most values read from one message (properties included).
pub const MAX_VALUES: usize = 1024;

/// Why a message is not AMF0 this reader accepts.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AmfError {
    /// Objects or arrays nested deeper than [`MAX_DEPTH`].
    #[error("AMF0 nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_VALUES`] values in one message.
    #[error("more than {MAX_VALUES} AMF0 values in one message")]
    TooManyValues,
    /// A value runs past the end of the message.
    #[error("AMF0 value cut short")]
    Truncated,
    /// A type marker this reader does not read (references, typed objects, AMF3).
    #[error("AMF0 type marker {0:#04x} not read")]
    UnknownMarker(u8),
    /// The first value is not the command name string.
    #[error("not a command: the first value is not a string")]
    NotACommand,
}

impl AmfError {
    /// True for a message that broke a bound ([`MAX_DEPTH`], [`MAX_VALUES`]):
    /// no honest peer sends one, unlike a type this reader does not know.
    pub fn is_over_limit(&self) -> bool {
        matches!(self, AmfError::TooDeep | AmfError::TooManyValues)
    }
}

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

    fn number(&mut self) -> Option<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(f64::from_be_bytes(a))
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, AmfError> {
        let mut props = Vec::new();
        loop {
            let len = usize::from(self.u16().ok_or(AmfError::Truncated)?);
            if len == 0 && self.data.get(self.pos) == Some(&0x09) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.string(len).ok_or(AmfError::Truncated)?;
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, AmfError> {
        self.values += 1;
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        if self.values > MAX_VALUES {
            return Err(AmfError::TooManyValues);
        }
        Ok(match self.u8().ok_or(AmfError::Truncated)? {
            0x00 => Amf0Value::Number(self.number().ok_or(AmfError::Truncated)?),
            0x01 => Amf0Value::Boolean(self.u8().ok_or(AmfError::Truncated)? != 0),
            0x02 => {
                let len = usize::from(self.u16().ok_or(AmfError::Truncated)?);
                Amf0Value::Utf8String(self.string(len).ok_or(AmfError::Truncated)?)
            }
            0x03 => Amf0Value::Object(self.properties(depth)?.into_iter().collect()),
            0x05 => Amf0Value::Null,
            0x06 => Amf0Value::Undefined,
            0x08 => {
                let _count = self.u32().ok_or(AmfError::Truncated)?;
                Amf0Value::Object(self.properties(depth)?.into_iter().collect())
            }
            0x0A => {
                // The count is not trusted for an allocation: MAX_VALUES
                // and the input's end stop the loop.
                let count = self.u32().ok_or(AmfError::Truncated)?;
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            0x0B => {
                let ms = self.number().ok_or(AmfError::Truncated)?;
                let _tz = self.u16().ok_or(AmfError::Truncated)?;
                Amf0Value::Number(ms)
            }
            0x0C => {
                let len = self.u32().ok_or(AmfError::Truncated)? as usize;
                Amf0Value::Utf8String(self.string(len).ok_or(AmfError::Truncated)?)
            }
            marker => return Err(AmfError::UnknownMarker(marker)),
        })
    }
}

/// Reads every top-level value; an error if anything is malformed, unknown
/// or over a limit.
pub fn decode_all(data: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut r = Reader {
        data,
        pos: 0,
        values: 0,
    };
    let mut out = Vec::new();
    while r.pos < data.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

/// A command: name, transaction id, command object, further arguments.
pub type Command = (String, f64, Amf0Value, Vec<Amf0Value>);

/// Decodes an AMF0 command message, filling in a missing transaction id (0)
/// and command object (null).
pub fn decode_command(data: &[u8]) -> Result<Command, AmfError> {
    let mut it = decode_all(data)?.into_iter();
    let Some(Amf0Value::Utf8String(name)) = it.next() else {
        return Err(AmfError::NotACommand);
    };
    let txn = match it.next() {
        Some(Amf0Value::Number(n)) => n,
        _ => 0.0,
    };
    let object = it.next().unwrap_or(Amf0Value::Null);
    Ok((name, txn, object, it.collect()))
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
        assert_eq!(decode_command(&deep), Err(AmfError::TooDeep));
        assert_eq!(
            decode_command(&[0x02, 0, 9, b'a']),
            Err(AmfError::Truncated)
        );
        assert_eq!(decode_command(&[0x11]), Err(AmfError::UnknownMarker(0x11)));
        assert_eq!(
            decode_command(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(AmfError::Truncated)
        );
        // A strict array claiming 4 billion items holds what is there.
        let mut wide = vec![0x02, 0, 1, b'x', 0x0A, 0xFF, 0xFF, 0xFF, 0xFF];
        wide.extend([0x05; 2000]);
        assert_eq!(decode_command(&wide), Err(AmfError::TooManyValues));
    }
}
