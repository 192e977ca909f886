//! Synthetic but valid tokenizers for synthetic models: the special tokens and byte
//! tokens a real vocabulary of that family has, padded to the real size with made-up
//! pieces (and, for byte-level BPE, the merges that build them).

use super::preset::VocabKind;
use crate::gguf::{Array, GgufWriter, Value};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

#[derive(Debug, Default)]
struct Vocab {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
    merges: Vec<String>,
}

impl Vocab {
    fn push(&mut self, token: String, ty: i32) {
        // SentencePiece merges by score: earlier pieces are preferred.
        self.scores.push(-(self.tokens.len() as f32));
        self.tokens.push(token);
        self.types.push(ty);
    }
}

/// The printable character GPT-2's byte-level BPE uses for each byte: printable
/// Latin-1 bytes stand for themselves, the rest are moved up past U+0100.
pub fn byte_level_char(byte: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(byte) {
        return char::from(byte);
    }
    let shifted = (0..byte).filter(|&b| !printable(b)).count() as u32;
    char::from_u32(256 + shifted).expect("U+0100..U+0143 are valid chars")
}

/// Made-up words: all strings over `a..z` of length 1, then 2, then 3, ... in order.
fn words() -> impl Iterator<Item = String> {
    (1u32..).flat_map(|len| {
        (0..26u64.pow(len)).map(move |mut i| {
            let mut w = vec![b'a'; len as usize];
            for c in w.iter_mut().rev() {
                *c = b'a' + (i % 26) as u8;
                i /= 26;
            }
            String::from_utf8(w).expect("ASCII")
        })
    })
}

fn sentencepiece(n_vocab: usize, gemma: bool) -> Vocab {
    let mut v = Vocab::default();
    if gemma {
        for (t, ty) in [
            ("<pad>", CONTROL),
            ("<eos>", CONTROL),
            ("<bos>", CONTROL),
            ("<unk>", UNKNOWN),
        ] {
            v.push(t.into(), ty);
        }
        while v.tokens.len() < 105 {
            let name = format!("<unused{}>", v.tokens.len() - 4);
            v.push(name, UNUSED);
        }
        v.push("<start_of_turn>".into(), CONTROL);
        v.push("<end_of_turn>".into(), CONTROL);
    } else {
        v.push("<unk>".into(), UNKNOWN);
        v.push("<s>".into(), CONTROL);
        v.push("</s>".into(), CONTROL);
    }
    for b in 0..=255u8 {
        v.push(format!("<0x{b:02X}>"), BYTE);
    }
    // Pieces with and without the word-start marker.
    let mut pieces = words().flat_map(|w| [format!("▁{w}"), w]);
    while v.tokens.len() < n_vocab {
        let piece = pieces.next().expect("words() is endless");
        v.push(piece, NORMAL);
    }
    v
}

fn byte_pairs(n_vocab: usize) -> Vocab {
    let mut v = Vocab::default();
    for b in 0..=255u8 {
        v.push(byte_level_char(b).to_string(), NORMAL);
    }
    // Special tokens come last, where Llama 3 keeps them.
    let specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"];
    let space = byte_level_char(b' ');
    // Each new token is an existing token plus one letter, so every merge joins two
    // tokens that exist: "a"+"b", then "ab"+"c", ...; and "Ġ"+"a", "Ġa"+"b", ...
    'fill: for word in words() {
        let (head, last) = word.split_at(word.len() - 1);
        let plain = (!head.is_empty()).then(|| (head.to_string(), word.clone()));
        let spaced = (format!("{space}{head}"), format!("{space}{word}"));
        for (left, token) in plain.into_iter().chain([spaced]) {
            if v.tokens.len() + specials.len() == n_vocab {
                break 'fill;
            }
            v.merges.push(format!("{left} {last}"));
            v.push(token, NORMAL);
        }
    }
    for s in specials {
        v.push(s.into(), CONTROL);
    }
    v
}

/// Writes the `tokenizer.ggml.*` metadata of a synthetic vocabulary of `n_vocab` tokens.
pub fn write_tokenizer(w: &mut GgufWriter, kind: VocabKind, n_vocab: usize) {
    let (vocab, model) = match kind {
        VocabKind::SentencePiece => (sentencepiece(n_vocab, false), "llama"),
        VocabKind::GemmaSentencePiece => (sentencepiece(n_vocab, true), "llama"),
        VocabKind::BytePairs { .. } => (byte_pairs(n_vocab), "gpt2"),
    };
    let id = |t: &str| {
        vocab
            .tokens
            .iter()
            .position(|x| x == t)
            .map(|i| Value::U32(i as u32))
    };
    w.set("tokenizer.ggml.model", Value::String(model.into()));
    match kind {
        VocabKind::SentencePiece => {
            w.set("tokenizer.ggml.bos_token_id", id("<s>").expect("present"));
            w.set("tokenizer.ggml.eos_token_id", id("</s>").expect("present"));
            w.set(
                "tokenizer.ggml.unknown_token_id",
                id("<unk>").expect("present"),
            );
            w.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
        }
        VocabKind::GemmaSentencePiece => {
            w.set("tokenizer.ggml.pre", Value::String("default".into()));
            w.set("tokenizer.ggml.bos_token_id", id("<bos>").expect("present"));
            w.set("tokenizer.ggml.eos_token_id", id("<eos>").expect("present"));
            w.set(
                "tokenizer.ggml.unknown_token_id",
                id("<unk>").expect("present"),
            );
            w.set(
                "tokenizer.ggml.padding_token_id",
                id("<pad>").expect("present"),
            );
            w.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
            w.set("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        }
        VocabKind::BytePairs { pre } => {
            w.set("tokenizer.ggml.pre", Value::String(pre.into()));
            w.set(
                "tokenizer.ggml.bos_token_id",
                id("<|begin_of_text|>").expect("present"),
            );
            w.set(
                "tokenizer.ggml.eos_token_id",
                id("<|end_of_text|>").expect("present"),
            );
            w.set(
                "tokenizer.ggml.eot_token_id",
                id("<|eot_id|>").expect("present"),
            );
            w.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
            w.set(
                "tokenizer.ggml.merges",
                Value::Array(Array::String(vocab.merges.clone())),
            );
        }
    }
    if !matches!(kind, VocabKind::BytePairs { .. }) {
        w.set(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vocab.scores)),
        );
    }
    w.set(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(vocab.types)),
    );
    w.set(
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(vocab.tokens)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn byte_level_chars_are_gpt2s() {
        assert_eq!(byte_level_char(b'a'), 'a');
        assert_eq!(byte_level_char(b' '), 'Ġ');
        assert_eq!(byte_level_char(b'\n'), 'Ċ');
        assert_eq!(byte_level_char(0), 'Ā');
        assert_eq!(byte_level_char(0xAD), 'Ń');
        let all: HashSet<char> = (0..=255u8).map(byte_level_char).collect();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn vocabularies_have_the_requested_size_and_unique_tokens() {
        for (vocab, n) in [
            (sentencepiece(32000, false), 32000),
            (sentencepiece(262144, true), 262144),
            (byte_pairs(128256), 128256),
        ] {
            assert_eq!(vocab.tokens.len(), n);
            assert_eq!(vocab.types.len(), n);
            let unique: HashSet<&String> = vocab.tokens.iter().collect();
            assert_eq!(unique.len(), n);
        }
    }

    #[test]
    fn every_merge_joins_two_existing_tokens_into_an_existing_token() {
        let v = byte_pairs(5000);
        let tokens: HashSet<&str> = v.tokens.iter().map(String::as_str).collect();
        for m in &v.merges {
            let (a, b) = m.split_once(' ').unwrap();
            assert!(tokens.contains(a) && tokens.contains(b), "{m}");
            assert!(tokens.contains(format!("{a}{b}").as_str()), "{m}");
        }
    }

    #[test]
    fn gemma_turn_markers_sit_where_gemmas_do() {
        let v = sentencepiece(1000, true);
        assert_eq!(v.tokens[105], "<start_of_turn>");
        assert_eq!(v.tokens[106], "<end_of_turn>");
        assert_eq!(v.tokens[3], "<unk>");
    }
}
