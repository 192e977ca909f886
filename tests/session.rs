//! Sessions on a real model: incremental decoding equals one batched pass, and a
//! full context or a bad token is an error.

mod common;

use rustorch::runtime::cpu::RunError;
use rustorch::runtime::{DecodeInput, KvType, Model};

const PROMPT: [u32; 10] = [504, 3575, 282, 4649, 314, 7042, 30, 378, 1159, 29];

fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn decoding_token_by_token_equals_one_batched_pass() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(path).unwrap();
    let n_vocab = model.config.n_vocab;
    let mut batched = model
        .session(Some(64), KvType::F32, DecodeInput::F32)
        .unwrap();
    let all = batched.logits_all(&PROMPT).unwrap();
    let mut stepwise = model
        .session(Some(64), KvType::F32, DecodeInput::F32)
        .unwrap();
    for (i, &t) in PROMPT.iter().enumerate() {
        let logits = stepwise.logits_last(&[t]).unwrap();
        let err = rel_l2(&logits, &all[i * n_vocab..(i + 1) * n_vocab]);
        assert!(err < 1e-5, "position {i}: relative L2 {err}");
    }
}

#[test]
fn a_full_context_is_an_error() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(path).unwrap();
    let mut session = model
        .session(Some(8), KvType::F16, DecodeInput::F32)
        .unwrap();
    let err = session.logits_last(&PROMPT).unwrap_err();
    assert_eq!(
        err,
        RunError::ContextFull {
            needed: 10,
            capacity: 8
        }
    );
    assert_eq!(session.logits_last(&[]).unwrap_err(), RunError::NoTokens);
    let err = session.logits_last(&[49152]).unwrap_err();
    assert!(err
        .to_string()
        .contains("token id 49152 is outside the vocabulary of 49152"));
}
