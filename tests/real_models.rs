//! Both real models load, and `info` reports what llama.cpp and the gguf package see.

mod common;

use rustorch::gguf::summary::ModelSummary;
use rustorch::gguf::GgufFile;

fn summary(file: &str) -> Option<ModelSummary> {
    let path = common::real_model(file)?;
    let gguf = GgufFile::open(&path).unwrap();
    Some(ModelSummary::new(gguf.header(), gguf.file_len()))
}

fn param(s: &ModelSummary, key: &str) -> i64 {
    s.hyper_parameters[key].as_i64().unwrap()
}

#[test]
fn smollm2_info() {
    let Some(s) = summary(common::SMOLLM2) else {
        return;
    };
    assert_eq!(s.architecture, "llama");
    assert_eq!(s.tensor_count, 272);
    assert_eq!(param(&s, "block_count"), 30);
    assert_eq!(param(&s, "embedding_length"), 576);
    assert_eq!(s.vocab_size, 49152);
    assert_eq!(s.tokenizer_model.as_deref(), Some("gpt2"));
    assert_eq!(s.tokenizer_pre.as_deref(), Some("smollm"));
    assert!(s.has_chat_template);
    assert_eq!(s.file_type.as_deref(), Some("Q4_1"));
    let types: Vec<(&str, usize)> = s
        .tensor_types
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(types, [("F32", 61), ("Q4_1", 210), ("Q8_0", 1)]);
    assert_eq!(s.file_bytes, 98_362_432);
}

#[test]
fn gemma3_info() {
    let Some(s) = summary(common::GEMMA3) else {
        return;
    };
    assert_eq!(s.architecture, "gemma3");
    assert_eq!(s.tensor_count, 236);
    assert_eq!(param(&s, "block_count"), 18);
    assert_eq!(param(&s, "embedding_length"), 640);
    assert_eq!(param(&s, "attention.sliding_window"), 512);
    assert_eq!(s.vocab_size, 262144);
    assert_eq!(s.tokenizer_model.as_deref(), Some("llama"));
    assert!(!s.has_chat_template);
    assert_eq!(s.file_type.as_deref(), Some("Q4_K_M"));
    let types: Vec<(&str, usize)> = s
        .tensor_types
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        types,
        [
            ("F32", 109),
            ("Q4_K", 27),
            ("Q5_0", 81),
            ("Q6_K", 9),
            ("Q8_0", 10)
        ]
    );
    assert_eq!(s.file_bytes, 253_113_024);
}

#[test]
fn tensor_bytes_are_borrowed_from_the_map() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let gguf = GgufFile::open(&path).unwrap();
    let (info, bytes) = gguf.tensor_data("token_embd.weight").unwrap();
    assert_eq!(info.shape(), [49152, 576]);
    assert_eq!(bytes.len() as u64, info.n_bytes);
    // The last tensor ends inside the file, and data starts on the alignment.
    assert_eq!(gguf.data_offset % gguf.alignment, 0);
    let end = gguf
        .tensors
        .iter()
        .map(|t| gguf.data_offset + t.offset + t.n_bytes)
        .max();
    assert!(end.unwrap() <= gguf.file_len());
}

/// Random mutations of SmolLM2's real header (its first bytes, where counts, keys and
/// types live, and anywhere up to the data section): never a panic, never slow.
#[test]
fn mutations_of_a_real_header_never_panic() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use rustorch::gguf::GgufHeader;
    use std::time::{Duration, Instant};

    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let gguf = GgufFile::open(&path).unwrap();
    let header = std::fs::read(&path).unwrap()[..gguf.data_offset as usize].to_vec();
    let mutation = (
        prop::collection::vec((0..4096usize, any::<u8>()), 0..6),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        prop::option::of(any::<prop::sample::Index>()),
    );
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    runner
        .run(&mutation, |(near, anywhere, cut)| {
            let mut bytes = header.clone();
            for (at, value) in near {
                bytes[at] = value;
            }
            for (at, value) in anywhere {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            let start = Instant::now();
            let _ = GgufHeader::parse(&bytes);
            prop_assert!(start.elapsed() < Duration::from_millis(500));
            Ok(())
        })
        .unwrap();
}
