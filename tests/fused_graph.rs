//! The compiler's passes change no result: the fused graph gives the canonical
//! graph's logits on the CPU, at every position, for both real models and for
//! random toy models of both architectures (sliding-window rings included).

mod common;
#[path = "support/tiny.rs"]
mod tiny;

use proptest::prelude::*;
use rustorch::runtime::{DecodeInput, KvType, Model};

fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

/// Runs the same steps through both graphs: a prefill of `chunks[0]` tokens, more
/// chunks, then `decode` single tokens; compares logits at every position.
fn assert_same_logits(
    fused: &Model,
    unfused: &Model,
    tokens: &[u32],
    chunks: &[usize],
    context: usize,
) {
    assert!(
        fused.graph_last.len() < unfused.graph_last.len(),
        "nothing was fused"
    );
    let n_vocab = fused.config.n_vocab;
    let mut a = fused
        .session(Some(context), KvType::F16, DecodeInput::F32)
        .unwrap();
    let mut b = unfused
        .session(Some(context), KvType::F16, DecodeInput::F32)
        .unwrap();
    let mut at = 0;
    for &len in chunks {
        let step = &tokens[at..at + len];
        let (x, y) = (a.logits_all(step).unwrap(), b.logits_all(step).unwrap());
        for t in 0..len {
            let row = t * n_vocab..(t + 1) * n_vocab;
            let err = rel_l2(&x[row.clone()], &y[row]);
            assert!(err < 1e-5, "position {}: relative L2 {err}", at + t);
        }
        at += len;
    }
    for (i, &t) in tokens[at..].iter().enumerate() {
        let (x, y) = (a.logits_last(&[t]).unwrap(), b.logits_last(&[t]).unwrap());
        let err = rel_l2(&x, &y);
        assert!(err < 1e-5, "decoded position {}: relative L2 {err}", at + i);
    }
}

fn real_model_check(file: &str) {
    let Some(path) = common::real_model(file) else {
        return;
    };
    let fused = Model::load(&path).unwrap();
    let unfused = Model::load_unfused(&path).unwrap();
    let tokens: Vec<u32> = (0..24).map(|i| (i * 7919 + 13) % 20_000).collect();
    assert_same_logits(&fused, &unfused, &tokens, &[12, 6], 64);
}

#[test]
fn smollm2_fused_equals_unfused() {
    real_model_check(common::SMOLLM2);
}

#[test]
fn gemma3_fused_equals_unfused() {
    real_model_check(common::GEMMA3);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_llama_models_fuse_exactly(
        n_layer in 1u64..3, n_head_kv in 1u64..3, group in 1u64..4,
        ff in 1u64..5, first in 1usize..9, seed in any::<u64>(),
    ) {
        let preset = tiny::llama(n_layer, n_head_kv, group, 32 * ff);
        let dir = tiny::scratch("random-llama");
        let path = tiny::write(&preset, &dir, "model.gguf", seed);
        let tokens: Vec<u32> = (0..16).map(|i| ((seed >> (i % 32)) as u32 ^ i) % 400).collect();
        let fused = Model::load(&path).unwrap();
        let unfused = Model::load_unfused(&path).unwrap();
        assert_same_logits(&fused, &unfused, &tokens, &[first, 3], 32);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn random_gemma3_models_fuse_exactly(
        n_layer in 1u64..8, width in 1u64..3, n_head in 1u64..4, window in 2u64..6,
        first in 1usize..9, seed in any::<u64>(),
    ) {
        let preset = tiny::gemma3(n_layer, 32 * width, n_head, window);
        let dir = tiny::scratch("random-gemma3");
        let path = tiny::write(&preset, &dir, "model.gguf", seed);
        let tokens: Vec<u32> = (0..20).map(|i| ((seed >> (i % 32)) as u32 ^ i) % 400).collect();
        let fused = Model::load(&path).unwrap();
        let unfused = Model::load_unfused(&path).unwrap();
        // Chunks longer than the window, and enough decoding for the rings to wrap.
        assert_same_logits(&fused, &unfused, &tokens, &[first, 7], 32);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
