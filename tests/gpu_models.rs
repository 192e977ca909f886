//! Both real models on the GPU beside the CPU interpreter: logits at every position of
//! a short prompt (relative L2 < 1e-3) and a few greedy tokens, identical. Short on
//! purpose: a software device (lavapipe) runs a quantised matmul at ~0.25 GB/s.

mod common;
mod gpu_common;

use gpu_common::{gpu, relative_l2};
use rustorch::runtime::cpu::CpuInterpreter;
use rustorch::runtime::gpu::{GpuContext, GpuExecutor, GpuOptions};
use rustorch::runtime::{argmax, DecodeInput, KvCache, KvType, Model, Session};

const CONTEXT: usize = 32;
const GREEDY_STEPS: usize = 3;

/// A GPU session and a CPU session of `model` over `capacity` positions.
fn session_pair<'m>(
    model: &'m Model,
    context: &'m GpuContext,
    capacity: usize,
    decode_input: DecodeInput,
) -> (Session<'m>, Session<'m>) {
    let on_gpu = model
        .gpu_session(context, Some(capacity), KvType::F16, decode_input)
        .unwrap();
    let on_cpu = model
        .session(Some(capacity), KvType::F16, decode_input)
        .unwrap();
    (on_gpu, on_cpu)
}

/// The graphs a model runs: the compiler's fused ones (what sessions run), and the
/// canonical ones (one kernel per op).
#[derive(Debug, Clone, Copy)]
enum Graphs {
    Fused,
    Canonical,
}

fn compare(file: &str, prompt: &[u32]) {
    for graphs in [Graphs::Fused, Graphs::Canonical] {
        compare_graphs(file, prompt, graphs);
    }
}

fn compare_graphs(file: &str, prompt: &[u32], graphs: Graphs) {
    let Some(path) = common::real_model(file) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model = match graphs {
        Graphs::Fused => Model::load(&path),
        Graphs::Canonical => Model::load_unfused(&path),
    }
    .unwrap();
    let file = &format!("{file} ({graphs:?})");
    let options = GpuOptions {
        max_tokens: prompt.len(),
        context: CONTEXT,
        kv_type: KvType::F16,
        decode_input: DecodeInput::F32,
        round_once: true,
    };
    let n_vocab = model.config.n_vocab;

    // Logits at every position.
    let cpu = CpuInterpreter::new(&model.graph_all, &model.gguf).unwrap();
    let mut cpu_kv = KvCache::new(&model.graph_all, CONTEXT, KvType::F16);
    let want = cpu.run(prompt, 0, &mut cpu_kv).unwrap();
    let start = std::time::Instant::now();
    let gpu_all = GpuExecutor::new(&model.graph_all, &model.gguf, context, options).unwrap();
    eprintln!(
        "{file}: loaded on {} in {:.2?}, {} dispatches per step",
        context.adapter_description(),
        start.elapsed(),
        gpu_all.dispatch_count(prompt.len(), 0)
    );
    let mut gpu_kv = gpu_all.kv_cache().unwrap();
    let got = gpu_all.run(prompt, 0, &mut gpu_kv).unwrap();
    for (pos, (g, w)) in got
        .chunks_exact(n_vocab)
        .zip(want.chunks_exact(n_vocab))
        .enumerate()
    {
        let err = relative_l2(g, w);
        eprintln!("{file}: position {pos}: relative L2 {err:.2e}");
        assert!(err < 1e-3, "{file}: position {pos}: relative L2 {err:e}");
    }
    drop(gpu_all);

    // Greedy decoding: the GPU reads back only the chosen token.
    let cpu = CpuInterpreter::new(&model.graph_last, &model.gguf).unwrap();
    let mut cpu_kv = KvCache::new(&model.graph_last, CONTEXT, KvType::F16);
    let gpu_last = GpuExecutor::new(&model.graph_last, &model.gguf, context, options).unwrap();
    let mut gpu_kv = gpu_last.kv_cache().unwrap();
    let (mut cpu_tokens, mut gpu_tokens) = (Vec::new(), Vec::new());
    let (mut cpu_step, mut gpu_step) = (prompt.to_vec(), prompt.to_vec());
    let mut past = 0;
    for _ in 0..GREEDY_STEPS {
        let c = argmax(&cpu.run(&cpu_step, past, &mut cpu_kv).unwrap()) as u32;
        let start = std::time::Instant::now();
        let g = gpu_last.run_argmax(&gpu_step, past, &mut gpu_kv).unwrap();
        eprintln!(
            "{file}: {} tokens after {past}: {:.2?} on the GPU",
            gpu_step.len(),
            start.elapsed()
        );
        past += cpu_step.len();
        cpu_tokens.push(c);
        gpu_tokens.push(g);
        (cpu_step, gpu_step) = (vec![c], vec![g]);
    }
    eprintln!("{file}: greedy tokens {gpu_tokens:?}");
    assert_eq!(gpu_tokens, cpu_tokens, "{file}: greedy tokens");
}

#[test]
fn smollm2_on_the_gpu_matches_the_cpu() {
    // "The capital of France is" in SmolLM2's vocabulary, give or take.
    compare(common::SMOLLM2, &[504, 3575, 282, 4649, 314]);
}

#[test]
fn gemma3_on_the_gpu_matches_the_cpu() {
    compare(common::GEMMA3, &[2, 818, 5279, 529, 7001, 563]);
}

/// Greedy generation through a GPU session (the argmax taken on the device, 4 bytes
/// read back a token) gives the CPU session's tokens, with x in f32 and in 8 bits in
/// the decode matmuls.
#[test]
fn smollm2_greedy_session_on_the_gpu_matches_the_cpu() {
    use rustorch::runtime::{GenerateOptions, Sampler, SamplerConfig};
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model = Model::load(&path).unwrap();
    let options = GenerateOptions {
        max_tokens: 8,
        eog: Default::default(),
        context_shift: false,
        keep: 0,
    };
    let prompt = [504, 3575, 282, 4649, 314];
    let run = |session: &mut Session| {
        let mut sampler = Sampler::new(SamplerConfig::greedy());
        session
            .generate(&prompt, &mut sampler, &options, |_| {
                std::ops::ControlFlow::Continue(())
            })
            .unwrap()
            .tokens
    };
    for decode_input in [DecodeInput::F32, DecodeInput::Int8] {
        let (mut on_gpu, mut on_cpu) = session_pair(&model, context, CONTEXT, decode_input);
        assert_eq!(run(&mut on_gpu), run(&mut on_cpu), "{decode_input:?}");
    }
}

/// A GPU session's last-row logits (one row read back) are the CPU session's.
#[test]
fn smollm2_last_row_logits_on_the_gpu_match_the_cpu() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model = Model::load(&path).unwrap();
    let prompt = [504, 3575, 282, 4649, 314];
    let (mut on_gpu, mut on_cpu) = session_pair(&model, context, CONTEXT, DecodeInput::F32);
    let (got, want) = (
        on_gpu.logits_last(&prompt).unwrap(),
        on_cpu.logits_last(&prompt).unwrap(),
    );
    assert_eq!(got.len(), model.config.n_vocab);
    let err = relative_l2(&got, &want);
    assert!(err < 1e-3, "relative L2 {err:e}");
}

/// A prompt longer than a GPU step runs in chunks, only the last read back: its last
/// row's logits and the position after it are the CPU session's.
#[test]
fn smollm2_prompt_longer_than_a_step_runs_in_chunks() {
    use rustorch::runtime::GPU_STEP_TOKENS;
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model = Model::load(&path).unwrap();
    let prompt: Vec<u32> = (0..GPU_STEP_TOKENS + 88)
        .map(|i| 100 + (i * 37 % 5000) as u32)
        .collect();
    let capacity = 2 * GPU_STEP_TOKENS;
    let (mut on_gpu, mut on_cpu) = session_pair(&model, context, capacity, DecodeInput::F32);
    let (got, want) = (
        on_gpu.logits_last(&prompt).unwrap(),
        on_cpu.logits_last(&prompt).unwrap(),
    );
    let err = relative_l2(&got, &want);
    assert!(err < 1e-3, "relative L2 {err:e}");
    assert_eq!(on_gpu.position(), prompt.len());
}

/// A GPU step the host waits for encodes the step it foresees (as many tokens, right
/// after, read back alike), and the next step runs those commands only where it is
/// that step: a session that changes what it reads back, how many tokens a step takes
/// and where it stands (a context shift, past the contexts that split attention into
/// runs) gives the CPU session's results at every step.
#[test]
fn smollm2_steps_unlike_the_one_foreseen_match_the_cpu() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model = Model::load(&path).unwrap();
    let (mut on_gpu, mut on_cpu) = session_pair(&model, context, 256, DecodeInput::F32);
    let prompt: Vec<u32> = (0..196).map(|i| 100 + (i * 37 % 5000) as u32).collect();
    let mut next = on_gpu.argmax_last(&prompt).unwrap();
    assert_eq!(
        next,
        on_cpu.argmax_last(&prompt).unwrap(),
        "after the prompt"
    );
    // Foreseen: one token, its argmax.
    let token = next;
    next = on_gpu.argmax_last(&[token]).unwrap();
    assert_eq!(
        next,
        on_cpu.argmax_last(&[token]).unwrap(),
        "a foreseen step"
    );
    let mut logits_agree = |tokens: &[u32], what: &str| {
        let got = on_gpu.logits_last(tokens).unwrap();
        let want = on_cpu.logits_last(tokens).unwrap();
        let err = relative_l2(&got, &want);
        assert!(err < 1e-3, "{what}: relative L2 {err:e}");
        argmax(&want) as u32
    };
    // Unforeseen: logits instead of the argmax, then two tokens instead of one.
    let token = logits_agree(&[next], "logits after argmaxes");
    let argmax_agrees = |on_gpu: &mut Session, on_cpu: &mut Session, tokens: &[u32], what: &str| {
        let got = on_gpu.argmax_last(tokens).unwrap();
        assert_eq!(got, on_cpu.argmax_last(tokens).unwrap(), "{what}");
        got
    };
    let token = argmax_agrees(
        &mut on_gpu,
        &mut on_cpu,
        &[token, 300],
        "two tokens after one",
    );
    argmax_agrees(&mut on_gpu, &mut on_cpu, &[token], "one token after two");
    // Unforeseen: 120 positions fewer, the same step otherwise, its attention in one
    // run instead of four.
    on_gpu.discard(1, 120).unwrap();
    on_cpu.discard(1, 120).unwrap();
    assert_eq!(on_gpu.position(), on_cpu.position());
    let token = argmax_agrees(&mut on_gpu, &mut on_cpu, &[400], "after a shift");
    let (got, want) = (
        on_gpu.top_k_last(&[token], 5).unwrap(),
        on_cpu.top_k_last(&[token], 5).unwrap(),
    );
    let ids = |c: &[(u32, f32)]| c.iter().map(|&(id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(&got), ids(&want), "top-k after an argmax");
}

/// Greedy generation on a GPU chains its steps on the device (each step's token is the
/// argmax of the step before, and goes in before the host reads it): its tokens, its
/// stops (end of generation, the callback, the length) and the position it leaves are
/// the CPU session's, a later generation goes on alike, and a context shift midway
/// gives the same tokens.
#[test]
fn smollm2_chained_greedy_generation_stops_and_shifts_as_the_cpu_does() {
    use rustorch::runtime::{GenerateOptions, Sampler, SamplerConfig, StopReason};
    use std::ops::ControlFlow;
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model = Model::load(&path).unwrap();
    let prompt = [504, 3575, 282, 4649, 314];
    let sessions = |capacity| session_pair(&model, context, capacity, DecodeInput::F32);
    let options = |max_tokens: usize, eog: &[u32]| GenerateOptions {
        max_tokens,
        eog: eog.iter().copied().collect(),
        context_shift: true,
        keep: 1,
    };
    // Tokens, stop and position after generating, stopping after `stop_after` tokens.
    let run = |session: &mut Session, prompt: &[u32], options: &GenerateOptions, stop_after| {
        let mut sampler = Sampler::new(SamplerConfig::greedy());
        let mut seen = 0;
        let generation = session
            .generate(prompt, &mut sampler, options, |_| {
                seen += 1;
                if seen == stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        (generation.tokens, generation.stop, session.position())
    };
    let (mut on_gpu, mut on_cpu) = sessions(CONTEXT);
    let free = run(&mut on_cpu, &prompt, &options(8, &[]), 0);
    assert_eq!(
        run(&mut on_gpu, &prompt, &options(8, &[]), 0),
        free,
        "8 tokens"
    );
    assert_eq!(free.1, StopReason::Length);

    // An end-of-generation token (the fourth of the free run), then a generation after it.
    let eog = options(8, &[free.0[3]]);
    let (mut on_gpu, mut on_cpu) = sessions(CONTEXT);
    let want = run(&mut on_cpu, &prompt, &eog, 0);
    assert_eq!(want.1, StopReason::Eog);
    assert_eq!(
        run(&mut on_gpu, &prompt, &eog, 0),
        want,
        "stopped by an end token"
    );
    let after = [free.0[0]];
    let want = run(&mut on_cpu, &after, &options(4, &[]), 0);
    assert_eq!(
        run(&mut on_gpu, &after, &options(4, &[]), 0),
        want,
        "after the end token"
    );

    // The callback stops generation at the third token.
    let (mut on_gpu, mut on_cpu) = sessions(CONTEXT);
    let want = run(&mut on_cpu, &prompt, &options(8, &[]), 3);
    assert_eq!(want.1, StopReason::Stopped);
    assert_eq!(
        run(&mut on_gpu, &prompt, &options(8, &[]), 3),
        want,
        "stopped by the callback"
    );

    // Twenty tokens in a context of twelve positions: shifted on the way.
    let (mut on_gpu, mut on_cpu) = sessions(12);
    let want = run(&mut on_cpu, &prompt, &options(20, &[]), 0);
    assert_eq!(want.0.len(), 20);
    assert_eq!(
        run(&mut on_gpu, &prompt, &options(20, &[]), 0),
        want,
        "shifted"
    );
}
