//! GGUF metadata values and the typed getters that read them.

use std::collections::BTreeMap;
use std::fmt;

/// The value types of the GGUF format, with their on-disk codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_code(code: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match code {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Bytes one value of this type takes at least on disk (a string's or an
    /// array's length prefix, and for an array also its element type).
    pub fn min_encoded_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous array, stored unboxed: a 262 144-entry vocabulary is one `Vec<String>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as an integer, whichever integer type holds it.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A short description for error messages: the type, and the value when it is short.
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
            Value::String(s) => format!("string of {} bytes", s.len()),
            Value::Array(a) => format!("array of {} {}", a.len(), a.element_type().name()),
            other => format!("{} {}", other.value_type().name(), other),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(v) => write!(f, "{v:?}"),
            Value::Array(a) => write!(f, "[{} x {}]", a.len(), a.element_type().name()),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
        }
    }
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn element_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }
}

/// A metadata lookup that failed: the key, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata key `{key}` is missing")]
    Missing { key: String },
    #[error("metadata key `{key}`: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
}

/// The key/value metadata of a GGUF file, in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: BTreeMap<String, Value>,
}

impl Metadata {
    /// Inserts a value; returns the previous one if the key was present.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        self.entries.insert(key, value)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn require(&self, key: &str) -> Result<&Value, MetadataError> {
        self.get(key).ok_or_else(|| MetadataError::Missing {
            key: key.to_string(),
        })
    }

    fn wrong(key: &str, expected: &'static str, found: &Value) -> MetadataError {
        MetadataError::WrongType {
            key: key.to_string(),
            expected,
            found: found.describe(),
        }
    }

    /// An integer of any width, converted to `T` when it fits.
    fn get_int<T: TryFrom<i128>>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<T, MetadataError> {
        let value = self.require(key)?;
        value
            .as_i128()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| Self::wrong(key, expected, value))
    }

    pub fn get_u32(&self, key: &str) -> Result<u32, MetadataError> {
        self.get_int(key, "an integer in u32 range")
    }

    pub fn get_u64(&self, key: &str) -> Result<u64, MetadataError> {
        self.get_int(key, "a non-negative integer")
    }

    pub fn get_usize(&self, key: &str) -> Result<usize, MetadataError> {
        self.get_int(key, "a non-negative integer")
    }

    pub fn get_i64(&self, key: &str) -> Result<i64, MetadataError> {
        self.get_int(key, "an integer")
    }

    /// A float; integers are accepted too, as llama.cpp's converters sometimes write them.
    pub fn get_f32(&self, key: &str) -> Result<f32, MetadataError> {
        match self.require(key)? {
            Value::F32(v) => Ok(*v),
            Value::F64(v) => Ok(*v as f32),
            other => other
                .as_i128()
                .map(|v| v as f32)
                .ok_or_else(|| Self::wrong(key, "a number", other)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, MetadataError> {
        match self.require(key)? {
            Value::Bool(v) => Ok(*v),
            other => Err(Self::wrong(key, "a bool", other)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, MetadataError> {
        match self.require(key)? {
            Value::String(v) => Ok(v),
            other => Err(Self::wrong(key, "a string", other)),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<&Array, MetadataError> {
        match self.require(key)? {
            Value::Array(v) => Ok(v),
            other => Err(Self::wrong(key, "an array", other)),
        }
    }

    pub fn get_str_array(&self, key: &str) -> Result<&[String], MetadataError> {
        match self.get_array(key)? {
            Array::String(v) => Ok(v),
            _ => Err(Self::wrong(key, "an array of strings", self.require(key)?)),
        }
    }

    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], MetadataError> {
        match self.get_array(key)? {
            Array::F32(v) => Ok(v),
            _ => Err(Self::wrong(key, "an array of f32", self.require(key)?)),
        }
    }

    pub fn get_i32_array(&self, key: &str) -> Result<&[i32], MetadataError> {
        match self.get_array(key)? {
            Array::I32(v) => Ok(v),
            _ => Err(Self::wrong(key, "an array of i32", self.require(key)?)),
        }
    }

    /// `Ok(None)` when the key is absent, the error when it is present with the wrong type.
    pub fn optional<T>(
        &self,
        key: &str,
        get: impl FnOnce(&Self, &str) -> Result<T, MetadataError>,
    ) -> Result<Option<T>, MetadataError> {
        if self.contains(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        let mut m = Metadata::default();
        m.insert("a.u8".into(), Value::U8(7));
        m.insert("a.neg".into(), Value::I32(-1));
        m.insert("a.name".into(), Value::String("llama".into()));
        m.insert(
            "a.list".into(),
            Value::Array(Array::String(vec!["x".into()])),
        );
        m
    }

    #[test]
    fn integers_widen_and_narrow_when_they_fit() {
        let m = meta();
        assert_eq!(m.get_u32("a.u8"), Ok(7));
        assert_eq!(m.get_u64("a.u8"), Ok(7));
        assert_eq!(m.get_i64("a.neg"), Ok(-1));
        assert_eq!(m.get_f32("a.u8"), Ok(7.0));
    }

    #[test]
    fn errors_name_the_key_and_what_was_found() {
        let m = meta();
        let err = m.get_u32("a.neg").unwrap_err().to_string();
        assert!(err.contains("a.neg") && err.contains("i32 -1"), "{err}");
        let err = m.get_str("a.u8").unwrap_err().to_string();
        assert!(err.contains("a.u8") && err.contains("u8 7"), "{err}");
        let err = m.get_f32_array("a.list").unwrap_err().to_string();
        assert!(err.contains("array of 1 string"), "{err}");
        let err = m.get_bool("nope").unwrap_err().to_string();
        assert_eq!(err, "metadata key `nope` is missing");
    }

    #[test]
    fn optional_distinguishes_absent_from_wrong() {
        let m = meta();
        assert_eq!(m.optional("absent", Metadata::get_u32), Ok(None));
        assert_eq!(m.optional("a.u8", Metadata::get_u32), Ok(Some(7)));
        assert!(m.optional("a.name", Metadata::get_u32).is_err());
    }
}
