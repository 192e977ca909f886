//! Tokenizer behaviour on small hand-made vocabularies, where each rule can be seen
//! in isolation: SentencePiece merging and byte fallback, special-token priority,
//! pre-tokenizer selection, end-of-generation derivation.

use rustorch::gguf::{Array, Metadata, Value};
use rustorch::tokenizer::pretok::PRE_TOKENIZERS;
use rustorch::tokenizer::{DetokenizeOptions, Fragment, PreTokenizer, TokenType, Tokenizer};

const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER: i32 = 4;
const BYTE: i32 = 6;

fn meta(model: &str, tokens: &[(String, f32, i32)]) -> Metadata {
    let mut m = Metadata::default();
    m.insert("tokenizer.ggml.model".into(), Value::String(model.into()));
    let texts = tokens.iter().map(|t| t.0.clone()).collect();
    let scores = tokens.iter().map(|t| t.1).collect();
    let types = tokens.iter().map(|t| t.2).collect();
    m.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(Array::String(texts)),
    );
    m.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(Array::F32(scores)),
    );
    m.insert(
        "tokenizer.ggml.token_type".into(),
        Value::Array(Array::I32(types)),
    );
    m
}

fn tok(text: &str, score: f32, ty: i32) -> (String, f32, i32) {
    (text.to_string(), score, ty)
}

/// A small SentencePiece vocabulary: `<unk> <s> </s>`, 256 byte tokens, pieces.
fn spm_tokens() -> Vec<(String, f32, i32)> {
    let mut t = vec![
        tok("<unk>", 0.0, UNKNOWN),
        tok("<s>", 0.0, CONTROL),
        tok("</s>", 0.0, CONTROL),
    ];
    for b in 0..=255u32 {
        t.push(tok(&format!("<0x{b:02X}>"), 0.0, BYTE));
    }
    for (p, s) in [
        ("▁", -10.0),
        ("h", -10.0),
        ("e", -10.0),
        ("l", -10.0),
        ("o", -10.0),
        ("▁h", -5.0),
        ("he", -3.0),
        ("ll", -1.0),
        ("llo", -2.0),
        ("hello", -4.0),
        ("▁hello", -0.5),
    ] {
        t.push(tok(p, s, NORMAL));
    }
    t.push(tok("<tool>", 0.0, USER));
    t
}

fn id(t: &Tokenizer, text: &str) -> u32 {
    t.vocab().id(text).unwrap()
}

#[test]
fn sentencepiece_merges_by_score_and_falls_back_to_bytes() {
    let t = Tokenizer::from_metadata(&meta("llama", &spm_tokens())).unwrap();
    assert_eq!(t.model_name(), "llama");
    assert!(t.add_bos() && t.add_space_prefix());
    assert_eq!(t.special().bos, Some(1));
    assert_eq!(t.special().unk, Some(0));
    // "▁hello" is reached through ll, llo, he, hello, ▁hello — by score.
    assert_eq!(
        t.encode("hello", true, true).unwrap(),
        vec![1, id(&t, "▁hello")]
    );
    // é is not a piece: its two bytes.
    assert_eq!(
        t.encode("hé", false, true).unwrap(),
        vec![id(&t, "▁h"), id(&t, "<0xC3>"), id(&t, "<0xA9>")]
    );
    // Detokenising reassembles the bytes and removes the prefix space — except
    // after a BOS it removed itself, where llama.cpp keeps the space.
    let opts = DetokenizeOptions {
        remove_special: true,
        unparse_special: false,
    };
    let ids = t.encode("hé hello", false, true).unwrap();
    assert_eq!(t.decode(&ids, opts).unwrap(), "hé hello");
    let ids = t.encode("hé hello", true, true).unwrap();
    assert_eq!(t.decode(&ids, opts).unwrap(), " hé hello");
    let keep = DetokenizeOptions {
        remove_special: false,
        unparse_special: true,
    };
    assert_eq!(t.decode(&ids, keep).unwrap(), "<s> hé hello");
    // Text after a special token gets the space prefix again; control tokens in the
    // input are tokens only with parse_special.
    let with = t.encode("<s>hello", false, true).unwrap();
    assert_eq!(with, vec![1, id(&t, "▁hello")]);
    let without = t.encode("<s>hello", false, false).unwrap();
    assert!(!without.contains(&1));
    // User-defined tokens are always matched.
    let user = t.encode("hello<tool>", false, false).unwrap();
    assert_eq!(user, vec![id(&t, "▁hello"), id(&t, "<tool>")]);
    assert_eq!(
        t.vocab().token_type(id(&t, "<tool>")),
        Some(TokenType::UserDefined)
    );
    // Out-of-range ids are an error, not a panic.
    assert!(t.piece(10_000, true).is_err());
    assert!(t.detokenize(&[1, 99_999], opts).is_err());
}

#[test]
fn sentencepiece_without_byte_tokens_uses_unk() {
    let tokens: Vec<_> = spm_tokens().into_iter().filter(|t| t.2 != BYTE).collect();
    let t = Tokenizer::from_metadata(&meta("llama", &tokens)).unwrap();
    assert_eq!(t.encode("é", false, true).unwrap(), vec![id(&t, "▁"), 0, 0]);
}

#[test]
fn longer_special_tokens_claim_text_first() {
    // llama.cpp tries special tokens longest first: "a|>zz" wins over the earlier,
    // overlapping "<|a".
    let mut tokens = spm_tokens();
    tokens.push(tok("<|a", 0.0, CONTROL));
    tokens.push(tok("a|>zz", 0.0, CONTROL));
    let t = Tokenizer::from_metadata(&meta("llama", &tokens)).unwrap();
    let long = id(&t, "a|>zz");
    assert_eq!(
        t.partition("<|a|>zz<|a", true),
        vec![
            Fragment::Text("<|"),
            Fragment::Token(long),
            Fragment::Token(id(&t, "<|a"))
        ]
    );
    assert_eq!(
        t.partition("<|a|>zz", false),
        vec![Fragment::Text("<|a|>zz")]
    );
    assert!(t.partition("", true).is_empty());
}

/// A tiny byte-level BPE vocabulary: every byte's character, a few merges, and
/// the given special tokens.
fn bpe_meta(pre: Option<&str>, specials: &[&str]) -> Metadata {
    let mut tokens: Vec<(String, f32, i32)> = (0..=255u8)
        .map(|b| {
            tok(
                &rustorch::synth::byte_level_char(b).to_string(),
                0.0,
                NORMAL,
            )
        })
        .collect();
    for p in ["he", "ll", "hell", "hello", "Ġw", "Ġwo"] {
        tokens.push(tok(p, 0.0, NORMAL));
    }
    for s in specials {
        tokens.push(tok(s, 0.0, CONTROL));
    }
    let mut m = meta("gpt2", &tokens);
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]
        .map(String::from)
        .to_vec();
    m.insert(
        "tokenizer.ggml.merges".into(),
        Value::Array(Array::String(merges)),
    );
    if let Some(pre) = pre {
        m.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
    }
    m
}

#[test]
fn every_pre_tokenizer_family_builds_and_encodes() {
    for family in PRE_TOKENIZERS {
        for name in family.names {
            let t = Tokenizer::from_metadata(&bpe_meta(Some(name), &[])).unwrap();
            assert_eq!(t.pre_tokenizer().unwrap().name, family.name);
            let ids = t
                .encode("hello world 123 don't\n\n  x", false, false)
                .unwrap();
            let text = t.decode(&ids, DetokenizeOptions::default()).unwrap();
            assert!(
                text.contains("hello") && text.contains("123"),
                "{name}: {text:?}"
            );
            assert_eq!(ids[0], id(&t, "hello"), "{name}");
        }
    }
    for required in [
        "default",
        "llama-bpe",
        "smollm",
        "qwen2",
        "deepseek-llm",
        "starcoder",
        "gpt-2",
    ] {
        assert!(PreTokenizer::find(required).is_some(), "{required}");
    }
    // Llama 3's family adds BOS by default.
    let t = Tokenizer::from_metadata(&bpe_meta(Some("llama-bpe"), &["<|begin_of_text|>"])).unwrap();
    assert!(t.add_bos());
}

#[test]
fn unknown_or_missing_pre_tokenizer_falls_back_to_default() {
    assert_eq!(PreTokenizer::select(Some("no-such-pre")).name, "default");
    assert_eq!(PreTokenizer::select(None).name, "default");
    let t = Tokenizer::from_metadata(&bpe_meta(Some("no-such-pre"), &[])).unwrap();
    assert_eq!(t.pre_tokenizer().unwrap().name, "default");
}

#[test]
fn end_of_generation_set_follows_llama_cpp() {
    // Llama 3 style: eot, eom and end_of_text all end generation; the file's eos too.
    // The eot id is found by text; with several candidates rustorch takes the lowest
    // id (llama.cpp takes whichever its hash map yields first; on SmolLM2 that is the
    // lowest, <|endoftext|> = 0).
    let specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|fim_pad|>",
    ];
    let mut m = bpe_meta(Some("llama-bpe"), &specials);
    let base = 262;
    m.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(base));
    m.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(base + 1));
    let t = Tokenizer::from_metadata(&m).unwrap();
    let s = t.special();
    assert_eq!(s.eot, Some(base + 1));
    assert_eq!(s.eom, Some(base + 3));
    assert_eq!(s.fim_pad, Some(base + 4));
    assert_eq!(s.eog, vec![base + 1, base + 2, base + 3, base + 4]);
    assert!(t.is_eog(base + 2) && !t.is_eog(base));

    // Harmony vocabularies: <|end|> separates messages and is not an end.
    let m = bpe_meta(Some("gpt-2"), &["<|end|>", "<|return|>", "<|call|>"]);
    let t = Tokenizer::from_metadata(&m).unwrap();
    let end = id(&t, "<|end|>");
    assert!(!t.is_eog(end) && t.is_eog(id(&t, "<|return|>")));

    // An id outside the vocabulary falls back to the family default (11 for gpt2,
    // as in llama.cpp).
    let mut m = bpe_meta(None, &[]);
    m.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(1_000_000));
    let t = Tokenizer::from_metadata(&m).unwrap();
    assert_eq!(t.special().eos, Some(11));
}

#[test]
fn malformed_tokenizer_metadata_is_a_clear_error() {
    let mut m = meta("llama", &spm_tokens());
    m.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(Array::F32(vec![0.0; 3])),
    );
    let err = Tokenizer::from_metadata(&m).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.scores has 3 entries"), "{err}");

    let m = meta("bert", &spm_tokens());
    let err = Tokenizer::from_metadata(&m).unwrap_err().to_string();
    assert!(err.contains("\"bert\" is not supported"), "{err}");

    let mut m = meta("llama", &spm_tokens());
    m.insert("tokenizer.ggml.bos_token_id".into(), Value::I32(-1));
    let err = Tokenizer::from_metadata(&m).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.bos_token_id"), "{err}");

    let m = bpe_meta(Some("gpt-2"), &[]);
    let mut broken = m.clone();
    broken.insert("tokenizer.ggml.merges".into(), Value::U32(3));
    let err = Tokenizer::from_metadata(&broken).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.merges"), "{err}");

    let mut empty = Metadata::default();
    empty.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
    let err = Tokenizer::from_metadata(&empty).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
}
