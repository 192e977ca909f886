//! Hostile input never panics, never goes quadratic, and bad bytes are a clear
//! error: a 1 MB single word, 100 000 special-token strings, every Unicode scalar
//! value, and bytes that are not UTF-8. Time bounds are generous sanity checks
//! (tens of seconds for work that takes well under one), not benchmarks.

mod common;

use std::time::{Duration, Instant};

use rustorch::synth::byte_level_char;
use rustorch::tokenizer::{DetokenizeOptions, Tokenizer, TokenizerError};

const RAW: DetokenizeOptions = DetokenizeOptions {
    remove_special: false,
    unparse_special: true,
};

fn load(model: &str) -> Option<Tokenizer> {
    Some(Tokenizer::open(common::real_model(model)?).unwrap())
}

/// Encodes under a time bound and checks the ids detokenise back to `expected`.
fn round_trip(
    tok: &Tokenizer,
    text: &str,
    expected: impl AsRef<[u8]>,
    limit: Duration,
) -> Vec<u32> {
    let start = Instant::now();
    let ids = tok.encode(text, false, false).unwrap();
    let took = start.elapsed();
    assert!(
        took < limit,
        "{} bytes took {took:?} (limit {limit:?})",
        text.len()
    );
    let back = tok.detokenize(&ids, RAW).unwrap();
    assert!(back == expected.as_ref(), "round trip differs");
    ids
}

/// A 1 MB word of pseudo-random lowercase letters.
fn random_word(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn one_mb_words(tok: &Tokenizer) {
    let limit = Duration::from_secs(30);
    let word = random_word(1 << 20);
    let ids = round_trip(tok, &word, &word, limit);
    assert!(ids.len() > 100_000);
    let same = "a".repeat(1 << 20);
    round_trip(tok, &same, &same, limit);
    let digits = "7".repeat(1 << 20);
    round_trip(tok, &digits, &digits, limit);
    let spaces = " ".repeat(1 << 20) + "x";
    round_trip(tok, &spaces, &spaces, limit);
}

#[test]
fn one_megabyte_single_word_smollm2() {
    if let Some(tok) = load(common::SMOLLM2) {
        one_mb_words(&tok);
    }
}

#[test]
fn one_megabyte_single_word_gemma3() {
    if let Some(tok) = load(common::GEMMA3) {
        one_mb_words(&tok);
    }
}

fn many_special_tokens(tok: &Tokenizer, marker: &str) {
    let id = tok.vocab().id(marker).unwrap();
    let n = 100_000;
    let text = marker.repeat(n);
    let start = Instant::now();
    let ids = tok.encode(&text, false, true).unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(ids.len(), n);
    assert!(ids.iter().all(|&i| i == id));
    // With parse_special off the same text is plain text, and comes back intact.
    round_trip(tok, &text, &text, Duration::from_secs(30));
    // Interleaved with text.
    let mixed = format!("{marker}x ").repeat(n);
    let ids = tok.encode(&mixed, false, true).unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == id).count(), n);
    assert_eq!(tok.detokenize(&ids, RAW).unwrap(), mixed.as_bytes());
}

#[test]
fn hundred_thousand_special_tokens_smollm2() {
    if let Some(tok) = load(common::SMOLLM2) {
        many_special_tokens(&tok, "<|im_start|>");
    }
}

#[test]
fn hundred_thousand_special_tokens_gemma3() {
    if let Some(tok) = load(common::GEMMA3) {
        many_special_tokens(&tok, "<start_of_turn>");
    }
}

/// Every Unicode scalar value, in blocks of 4096 so that each block mixes
/// neighbouring classes (letters, marks, digits, spaces, controls, unassigned,
/// private use, …).
fn every_code_point(tok: &Tokenizer, sentencepiece: bool) {
    let all: Vec<char> = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
    let start = Instant::now();
    for block in all.chunks(4096) {
        let text: String = block.iter().collect();
        // SentencePiece reads `▁` as its space marker, so it comes back as a space.
        // A byte-level vocabulary may lack a few bytes (SmolLM2 has no token for
        // 0x04, 0x06 or the lead bytes 0xF1-0xF7): those are dropped, as in llama.cpp.
        let expected: Vec<u8> = if sentencepiece {
            text.replace('▁', " ").into_bytes()
        } else {
            text.bytes()
                .filter(|&b| {
                    tok.vocab()
                        .id(byte_level_char(b).encode_utf8(&mut [0; 4]))
                        .is_some()
                })
                .collect()
        };
        round_trip(tok, &text, &expected, Duration::from_secs(30));
        // And with special-token parsing and BOS on, it still encodes.
        tok.encode(&text, true, true).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(120));
}

#[test]
fn every_code_point_smollm2() {
    if let Some(tok) = load(common::SMOLLM2) {
        every_code_point(&tok, false);
    }
}

#[test]
fn every_code_point_gemma3() {
    if let Some(tok) = load(common::GEMMA3) {
        every_code_point(&tok, true);
    }
}

#[test]
fn bytes_that_are_not_utf8_are_an_error() {
    let Some(tok) = load(common::SMOLLM2) else {
        return;
    };
    for (bytes, offset) in [
        (&b"abc\xffdef"[..], 3),
        (&b"\xc3"[..], 0),                 // truncated two-byte sequence
        (&b"ok \xed\xa0\x80"[..], 3),      // an encoded surrogate
        (&b"\xf8\x88\x80\x80\x80"[..], 0), // five-byte form
    ] {
        match tok.encode_bytes(bytes, true, true) {
            Err(TokenizerError::NotUtf8 { offset: o }) => assert_eq!(o, offset),
            other => panic!("{bytes:?}: expected NotUtf8, got {other:?}"),
        }
    }
    let err = tok.encode_bytes(b"abc\xff", true, true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input is not valid UTF-8: invalid byte sequence at byte offset 3"
    );
}

#[test]
fn stream_decoder_never_splits_a_character() {
    for model in [common::SMOLLM2, common::GEMMA3] {
        let Some(tok) = load(model) else {
            continue;
        };
        let text = "I like 🍕 and 🍣! 👨\u{200d}👩\u{200d}👧 日本語のテキスト, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 é";
        let ids = tok.encode(text, false, true).unwrap();
        let mut dec = tok.stream_decoder();
        let mut out = String::new();
        let mut held_back = false;
        for &id in &ids {
            let piece = tok.piece(id, false).unwrap();
            let chunk = dec.push(piece);
            held_back |= dec.has_pending();
            assert!(
                !chunk.contains('\u{FFFD}'),
                "{model}: broken character emitted"
            );
            out.push_str(&chunk);
        }
        out.push_str(&dec.finish());
        assert_eq!(out, text, "{model}");
        assert!(held_back, "{model}: expected some character to span tokens");
    }
    // Bytes that can never be UTF-8 come out as U+FFFD; an unfinished character
    // at the end too.
    let mut dec = rustorch::tokenizer::StreamDecoder::new();
    assert_eq!(dec.push(b"a\xff"), "a\u{FFFD}");
    assert_eq!(dec.push(b"\xf0\x9f"), "");
    assert_eq!(dec.push(b"\x8d\x95!"), "🍕!");
    assert_eq!(dec.push(b"\xe6\x97"), "");
    assert_eq!(dec.finish(), "\u{FFFD}");
}
