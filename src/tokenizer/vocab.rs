//! The vocabulary read from `tokenizer.ggml.tokens`, `.scores` and `.token_type`:
//! token texts, scores, token types and the attributes derived from them.

use ahash::AHashMap;

use super::error::{Result, TokenizerError};
use crate::gguf::{Array, Metadata, Value};

/// The token types GGUF stores in `tokenizer.ggml.token_type` (SentencePiece's
/// piece types, as the llama.cpp converters write them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0, or any value not listed below.
    Undefined,
    /// 1: an ordinary piece of text.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: a control token (`<s>`, `<|im_end|>`, …): never produced from plain text.
    Control,
    /// 4: a user-defined token: always matched as a whole in the input.
    UserDefined,
    /// 5: a reserved slot that is never used.
    Unused,
    /// 6: a byte-fallback token `<0xNN>`.
    Byte,
}

impl TokenType {
    /// The type for a `token_type` value from the file.
    pub fn from_code(code: i32) -> TokenType {
        match code {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// A short lowercase name, for listings.
    pub fn name(self) -> &'static str {
        match self {
            TokenType::Undefined => "undefined",
            TokenType::Normal => "normal",
            TokenType::Unknown => "unknown",
            TokenType::Control => "control",
            TokenType::UserDefined => "user-defined",
            TokenType::Unused => "unused",
            TokenType::Byte => "byte",
        }
    }
}

/// Attribute flags of a token. Several can hold at once: llama.cpp marks a control
/// token whose text says "unused" as control *and* unused, and promotes tokens that
/// look like end-of-turn markers to control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Attrs(u16);

impl Attrs {
    /// No flag: an undefined token.
    pub const UNDEFINED: Attrs = Attrs(0);
    /// The unknown token.
    pub const UNKNOWN: Attrs = Attrs(1 << 0);
    /// A reserved slot.
    pub const UNUSED: Attrs = Attrs(1 << 1);
    /// Ordinary text.
    pub const NORMAL: Attrs = Attrs(1 << 2);
    /// A control token.
    pub const CONTROL: Attrs = Attrs(1 << 3);
    /// A user-defined token.
    pub const USER_DEFINED: Attrs = Attrs(1 << 4);
    /// A byte-fallback token.
    pub const BYTE: Attrs = Attrs(1 << 5);

    /// Whether any flag of `other` is set.
    pub fn has(self, other: Attrs) -> bool {
        self.0 & other.0 != 0
    }

    /// These flags plus `other`'s.
    pub fn with(self, other: Attrs) -> Attrs {
        Attrs(self.0 | other.0)
    }

    /// The flags a token type starts with.
    pub fn from_type(ty: TokenType) -> Attrs {
        match ty {
            TokenType::Undefined => Attrs::UNDEFINED,
            TokenType::Normal => Attrs::NORMAL,
            TokenType::Unknown => Attrs::UNKNOWN,
            TokenType::Control => Attrs::CONTROL,
            TokenType::UserDefined => Attrs::USER_DEFINED,
            TokenType::Unused => Attrs::UNUSED,
            TokenType::Byte => Attrs::BYTE,
        }
    }

    /// Tokens that the special-token pass matches in the input text: control,
    /// user-defined and unknown tokens.
    pub fn is_special_text(self) -> bool {
        self.has(Attrs(
            Attrs::CONTROL.0 | Attrs::USER_DEFINED.0 | Attrs::UNKNOWN.0,
        ))
    }

    /// Tokens that render as nothing unless special tokens are asked for, and that
    /// are left to be tokenised as plain text when `parse_special` is off: control
    /// and unknown tokens.
    pub fn is_hidden(self) -> bool {
        self.has(Attrs(Attrs::CONTROL.0 | Attrs::UNKNOWN.0))
    }
}

/// The token table of a model.
#[derive(Debug, Clone)]
pub struct Vocab {
    texts: Vec<String>,
    scores: Vec<f32>,
    types: Vec<TokenType>,
    attrs: Vec<Attrs>,
    /// Text to id. When a text occurs twice the later id wins, as in llama.cpp.
    ids: AHashMap<String, u32>,
}

impl Vocab {
    /// Reads the token table from `tokenizer.ggml.tokens`, `.scores` (optional;
    /// f32 or i32) and `.token_type` (optional; all normal when absent).
    pub fn from_metadata(meta: &Metadata) -> Result<Vocab> {
        let texts_in = meta.get_str_array("tokenizer.ggml.tokens")?;
        let n = texts_in.len();
        if n == 0 {
            return Err(TokenizerError::InvalidVocab(
                "tokenizer.ggml.tokens is empty".into(),
            ));
        }
        if n > i32::MAX as usize {
            return Err(TokenizerError::InvalidVocab(format!(
                "{n} tokens is more than token ids can address"
            )));
        }
        let scores = match meta.get("tokenizer.ggml.scores") {
            None => vec![0.0; n],
            Some(Value::Array(Array::F32(v))) => prefix("tokenizer.ggml.scores", v, n)?.to_vec(),
            Some(Value::Array(Array::I32(v))) => prefix("tokenizer.ggml.scores", v, n)?
                .iter()
                .map(|&s| s as f32)
                .collect(),
            Some(other) => {
                return Err(TokenizerError::InvalidVocab(format!(
                    "tokenizer.ggml.scores: expected an array of f32 or i32, found {}",
                    other.describe()
                )))
            }
        };
        let types: Vec<TokenType> = match optional_i32s(meta, "tokenizer.ggml.token_type")? {
            None => vec![TokenType::Normal; n],
            Some(v) => prefix("tokenizer.ggml.token_type", v, n)?
                .iter()
                .map(|&t| TokenType::from_code(t))
                .collect(),
        };
        let mut texts = Vec::with_capacity(n);
        let mut ids = AHashMap::with_capacity(n);
        for (i, t) in texts_in.iter().enumerate() {
            // An empty token could never be matched; llama.cpp gives it a placeholder
            // name, and so do we, so that ids and texts stay one-to-one.
            let text = if t.is_empty() {
                eprintln!("rustorch: warning: token {i} has empty text; naming it [EMPTY_{i}]");
                format!("[EMPTY_{i}]")
            } else {
                t.clone()
            };
            ids.insert(text.clone(), i as u32);
            texts.push(text);
        }
        let attrs = types.iter().map(|&t| Attrs::from_type(t)).collect();
        Ok(Vocab {
            texts,
            scores,
            types,
            attrs,
            ids,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether the table is empty (never, for a table that was read successfully).
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// A token's text as stored in the file.
    pub fn text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    /// All token texts, by id.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// A token's score (0 when the file has none).
    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// A token's type as stored in the file.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    /// A token's attributes, after the adjustments made at load time.
    pub fn attrs(&self, id: u32) -> Attrs {
        self.attrs
            .get(id as usize)
            .copied()
            .unwrap_or(Attrs::UNDEFINED)
    }

    /// Adds flags to a token's attributes.
    pub(crate) fn add_attrs(&mut self, id: u32, attrs: Attrs) {
        if let Some(a) = self.attrs.get_mut(id as usize) {
            *a = a.with(attrs);
        }
    }

    /// Replaces a token's attributes.
    pub(crate) fn set_attrs(&mut self, id: u32, attrs: Attrs) {
        if let Some(a) = self.attrs.get_mut(id as usize) {
            *a = attrs;
        }
    }

    /// The id of a text, if some token has exactly that text.
    pub fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The text→id map (each text once; duplicates resolved to the later id).
    pub fn ids(&self) -> &AHashMap<String, u32> {
        &self.ids
    }
}

fn prefix<'a, T>(key: &str, v: &'a [T], n: usize) -> Result<&'a [T]> {
    v.get(..n).ok_or_else(|| {
        TokenizerError::InvalidVocab(format!(
            "{key} has {} entries but there are {n} tokens",
            v.len()
        ))
    })
}

/// An optional string key. (`Metadata::optional` cannot return borrowed values:
/// its getter's result type is not tied to the metadata's lifetime.)
pub(crate) fn optional_str<'a>(meta: &'a Metadata, key: &str) -> Result<Option<&'a str>> {
    if meta.contains(key) {
        Ok(Some(meta.get_str(key)?))
    } else {
        Ok(None)
    }
}

/// An optional i32-array key (see [`optional_str`]).
pub(crate) fn optional_i32s<'a>(meta: &'a Metadata, key: &str) -> Result<Option<&'a [i32]>> {
    if meta.contains(key) {
        Ok(Some(meta.get_i32_array(key)?))
    } else {
        Ok(None)
    }
}
