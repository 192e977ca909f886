//! Tiny synthetic models (the real architectures at toy sizes, random Q8_0
//! weights) written to a scratch directory, for tests that need a GGUF on disk
//! but not a real model's numbers.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

use rustorch::synth::{self, Preset, Quant, VocabKind};

/// A llama-architecture preset at toy size: heads of 32, the embedding as wide as
/// all query heads.
pub fn llama(n_layer: u64, n_head_kv: u64, group: u64, n_ff: u64) -> Preset {
    Preset {
        name: "tiny-llama",
        display_name: "tiny llama (test)",
        architecture: "llama",
        n_layer,
        n_embd: 32 * n_head_kv * group,
        n_ff,
        n_head: n_head_kv * group,
        n_head_kv,
        head_dim: 32,
        n_vocab: 400,
        context_length: 64,
        rope_freq_base: 10_000.0,
        rms_eps: 1e-5,
        tied_output: n_layer.is_multiple_of(2),
        sliding_window: None,
        vocab: VocabKind::SentencePiece,
    }
}

/// A Gemma 3 preset at toy size; every sixth layer is global, the others see `window`.
pub fn gemma3(n_layer: u64, n_embd: u64, n_head: u64, window: u64) -> Preset {
    Preset {
        name: "tiny-gemma3",
        display_name: "tiny gemma3 (test)",
        architecture: "gemma3",
        n_layer,
        n_embd,
        n_ff: 2 * n_embd,
        n_head,
        n_head_kv: 1,
        head_dim: 32,
        n_vocab: 400,
        context_length: 64,
        rope_freq_base: 1_000_000.0,
        rms_eps: 1e-6,
        tied_output: true,
        sliding_window: Some(window),
        vocab: VocabKind::GemmaSentencePiece,
    }
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rustorch-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `preset` with Q8_0 weights into `dir` as `file`; returns its path.
pub fn write(preset: &Preset, dir: &std::path::Path, file: &str, seed: u64) -> PathBuf {
    let path = dir.join(file);
    synth::write_model(preset, Quant::Q8_0, seed, &path).unwrap();
    path
}
