//! Tokenisation throughput on 1 MiB of English text (the GPL-3 text in
//! `tests/fixtures/tokenizer/english.txt`, repeated), for both real models, and on
//! 1 MiB of random lowercase "words", where no word repeats and the tokenizers'
//! word caches cannot help (the worst case for throughput).
//!
//! `RUSTORCH_MODELS=/path/to/models cargo bench --bench tokenize`
//! (models default to `<crate>/models`; a missing model is skipped with a message).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustorch::tokenizer::{DetokenizeOptions, Tokenizer};

const MODELS: [(&str, &str); 2] = [
    ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
];

fn english_mib() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let base = std::fs::read_to_string(root.join("tests/fixtures/tokenizer/english.txt"))
        .expect("tests/fixtures/tokenizer/english.txt");
    let mut text = String::with_capacity((1 << 20) + base.len());
    while text.len() < 1 << 20 {
        text.push_str(&base);
    }
    let mut end = 1 << 20;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// 1 MiB of pseudo-random lowercase words of 2 to 11 letters, space-separated.
fn random_words_mib() -> String {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut text = String::with_capacity((1 << 20) + 16);
    while text.len() < 1 << 20 {
        let len = 2 + next() % 10;
        for _ in 0..len {
            text.push(char::from(b'a' + (next() % 26) as u8));
        }
        text.push(' ');
    }
    text.truncate(1 << 20);
    text
}

fn model(file: &str) -> Option<Tokenizer> {
    let dir = std::env::var_os("RUSTORCH_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let path = dir.join(file);
    if !path.is_file() {
        eprintln!(
            "skipping {}: not found (set RUSTORCH_MODELS)",
            path.display()
        );
        return None;
    }
    Some(Tokenizer::open(&path).expect("model loads"))
}

fn bench(c: &mut Criterion) {
    let text = english_mib();
    let mut group = c.benchmark_group("tokenize_1MiB_english");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(text.len() as u64));
    for (name, file) in MODELS {
        let Some(tok) = model(file) else {
            continue;
        };
        group.bench_with_input(BenchmarkId::new("encode", name), &text, |b, text| {
            b.iter(|| tok.encode(text, true, true).expect("encodes"))
        });
        let ids = tok.encode(&text, true, true).expect("encodes");
        group.bench_with_input(BenchmarkId::new("detokenize", name), &ids, |b, ids| {
            b.iter(|| {
                tok.detokenize(ids, DetokenizeOptions::default())
                    .expect("decodes")
            })
        });
    }
    group.finish();

    let words = random_words_mib();
    let mut group = c.benchmark_group("tokenize_1MiB_random_words");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(words.len() as u64));
    for (name, file) in MODELS {
        let Some(tok) = model(file) else {
            continue;
        };
        group.bench_with_input(BenchmarkId::new("encode", name), &words, |b, text| {
            b.iter(|| tok.encode(text, true, true).expect("encodes"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
