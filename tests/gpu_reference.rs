//! The slow full-reference check on the GPU (run with `cargo test --release --test
//! gpu_reference -- --ignored`): both real models, every logits and greedy case of
//! llama.cpp's reference data, GPU beside the CPU — logits relative L2 < 1e-3 at every
//! position and greedy tokens identical. Ignored by default: on lavapipe a case takes
//! minutes; CI runs the short cases of `gpu_models.rs` instead.
//!
//! Both sides keep f32 caches. An f16 cache rounds each key to a 2^-11 step, which
//! turns the 1e-6 differences of another summation order into 1e-5 and compounds them
//! over the layers: the CPU against itself, prompt token by token rather than in one
//! step, reaches 1.4e-3 on SmolLM2 with f16 caches and 4.8e-6 with f32 ones. The f16
//! cache kernels are checked op by op in `gpu_kernels.rs`.

mod common;
mod gpu_common;

use common::ids;
use gpu_common::{gpu, relative_l2};
use rustorch::runtime::{argmax, DecodeInput, KvType, Model};

fn check(model_file: &str, model_dir: &str) {
    let Some(path) = common::real_model(model_file) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model = Model::load(&path).unwrap();
    let n_vocab = model.config.n_vocab;
    let read = |file: &str| common::reference(model_dir, file);
    // Every case runs and reports its worst position before the test fails, so that
    // one run shows the whole picture.
    let mut failures = Vec::new();
    let sessions = || {
        let on_gpu = model.gpu_session(context, Some(2048), KvType::F32, DecodeInput::F32);
        let on_cpu = model.session(Some(2048), KvType::F32, DecodeInput::F32);
        (on_gpu.unwrap(), on_cpu.unwrap())
    };
    for case in read("logits.json")["cases"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let (mut on_gpu, mut on_cpu) = sessions();
        let (g, c) = (
            on_gpu.logits_all(&prompt).unwrap(),
            on_cpu.logits_all(&prompt).unwrap(),
        );
        let (worst, pos) = g
            .chunks_exact(n_vocab)
            .zip(c.chunks_exact(n_vocab))
            .map(|(g, c)| relative_l2(g, c))
            .zip(0..)
            .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
        eprintln!(
            "{}: {} positions, worst relative L2 {worst:e} at position {pos}",
            case["id"],
            prompt.len()
        );
        if worst >= 1e-3 {
            failures.push(format!(
                "{}: position {pos}: relative L2 {worst:e}",
                case["id"]
            ));
        }
    }
    for case in read("greedy.json")["cases"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let steps = ids(&case["generated_ids"]).len();
        let (mut on_gpu, mut on_cpu) = sessions();
        let (mut g, mut c) = (
            on_gpu.argmax_last(&prompt).unwrap(),
            on_cpu.argmax_last(&prompt).unwrap(),
        );
        let mut agreed = 0;
        while agreed < steps && g == c {
            g = on_gpu.argmax_last(&[g]).unwrap();
            c = argmax(&on_cpu.logits_last(&[c]).unwrap()) as u32;
            agreed += 1;
        }
        eprintln!("{}: {agreed} of {steps} greedy tokens agree", case["id"]);
        if agreed < steps {
            failures.push(format!("{}: greedy step {agreed}: {g} vs {c}", case["id"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "slow on a software GPU: run with --ignored"]
fn smollm2_reference_cases_on_the_gpu() {
    check(common::SMOLLM2, "smollm2-135m-instruct-q4_1");
}

#[test]
#[ignore = "slow on a software GPU: run with --ignored"]
fn gemma3_reference_cases_on_the_gpu() {
    check(common::GEMMA3, "gemma-3-270m-q4_k_m");
}
