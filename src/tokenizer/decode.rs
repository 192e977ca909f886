//! Token ids back to text: the bytes of each token (its "piece"), whole-sequence
//! detokenisation with llama.cpp's flags, and a streaming decoder for generation.

use std::collections::HashMap;

use super::vocab::{Attrs, Vocab};
use crate::synth::byte_level_char;

/// How token texts are spelled in a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spelling {
    /// SentencePiece: `▁` stands for a space, `<0xNN>` for a byte.
    SentencePiece,
    /// GPT-2 byte level: every byte is one printable character.
    ByteLevel,
}

/// Computes the bytes each token stands for when special tokens are rendered.
pub(crate) fn pieces(vocab: &Vocab, spelling: Spelling) -> Vec<Box<[u8]>> {
    let byte_of: HashMap<char, u8> = (0..=255u8).map(|b| (byte_level_char(b), b)).collect();
    (0..vocab.len() as u32)
        .map(|id| {
            let text = vocab.text(id).unwrap_or_default();
            let attrs = vocab.attrs(id);
            let bytes: Vec<u8> = if attrs.is_special_text() {
                text.as_bytes().to_vec()
            } else if attrs.has(Attrs::NORMAL) {
                match spelling {
                    Spelling::SentencePiece => text.replace('▁', " ").into_bytes(),
                    Spelling::ByteLevel => byte_level_bytes(text, &byte_of),
                }
            } else if attrs.has(Attrs::BYTE) {
                byte_token_value(text).map(|b| vec![b]).unwrap_or_default()
            } else {
                // Unused and undefined tokens render as nothing.
                Vec::new()
            };
            bytes.into_boxed_slice()
        })
        .collect()
}

/// Maps GPT-2 characters back to bytes. A character outside the mapping (a broken
/// vocabulary) is shown as `[UNK_BYTE_0x…]` with the token text, as llama.cpp does.
fn byte_level_bytes(text: &str, byte_of: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match byte_of.get(&c) {
            Some(&b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// The byte of a `<0xNN>` token.
pub(crate) fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2)
        .then(|| u8::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Options of [`Tokenizer::detokenize`](super::Tokenizer::detokenize), named after
/// llama.cpp's `llama_detokenize` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DetokenizeOptions {
    /// Drop a leading BOS (and trailing EOS) that the tokenizer itself would add.
    pub remove_special: bool,
    /// Render control and unknown tokens as their text instead of nothing.
    pub unparse_special: bool,
}

/// llama.cpp's `clean_spaces` post-processing for byte-level BPE: drops the space
/// before `? ! . ,`, around a lone `'`, and before `'s 'm 're 've`.
pub(crate) fn clean_spaces(text: &[u8]) -> Vec<u8> {
    // Pass 1: " ?", " !", " .", " ," lose the space.
    let mut a: Vec<u8> = Vec::with_capacity(text.len());
    for (i, &x) in text.iter().enumerate() {
        if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            a.pop();
        }
        a.push(x);
    }
    // Pass 2: " ' " becomes "'".
    // A space dropped after an apostrophe no longer counts as the space before
    // the next character.
    let mut b: Vec<u8> = Vec::with_capacity(a.len());
    let mut i = 0;
    let mut dropped = None;
    while i < a.len() {
        let x = a[i];
        let prev_space = i > 0 && a[i - 1] == b' ' && dropped != Some(i - 1);
        if x == b'\'' && prev_space && i + 1 < a.len() && a[i + 1] == b' ' {
            b.pop();
            b.push(x);
            dropped = Some(i + 1);
            i += 2; // the following space goes too
            continue;
        }
        b.push(x);
        i += 1;
    }
    // Pass 3: " 's", " 'm", " 're", " 've" lose the space.
    let mut c: Vec<u8> = Vec::with_capacity(b.len());
    for (i, &x) in b.iter().enumerate() {
        if i > 0 && b[i - 1] == b' ' && x == b'\'' && i + 1 < b.len() {
            let x1 = b[i + 1];
            let x2 = b.get(i + 2).copied();
            let contraction = matches!(x1, b's' | b'm')
                || (x1 == b'r' && x2 == Some(b'e'))
                || (x1 == b'v' && x2 == Some(b'e'));
            if contraction {
                c.pop();
            }
        }
        c.push(x);
    }
    c
}

/// Turns a stream of token pieces into text without ever splitting a UTF-8
/// character: bytes of a character that continues in the next token are held back.
/// Bytes that can never become valid UTF-8 come out as U+FFFD.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Adds the bytes of one token; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: from_utf8 said these bytes are valid.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or(""));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Invalid bytes: replace them and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: bytes still pending (an unfinished character) come out as
    /// U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    /// Whether bytes are held back waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}
