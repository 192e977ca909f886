//! `rustorch-exec profile` and the GPU figures of `rustorch-exec bench`, on SmolLM2 and
//! the adapter the GPU tests use (lavapipe in CI), checked against the executor the
//! CLI builds. Short prompts on purpose: lavapipe takes about a second a decode step
//! and several for a multi-token one.

mod common;
mod gpu_common;

use std::process::{Command, Output};

use gpu_common::gpu;
use rustorch::compiler::layout::{plan_weights, Target};
use rustorch::runtime::gpu::{GpuContext, GpuExecutor, GpuOptions};
use rustorch::runtime::{DecodeInput, KvType, Model};
use serde_json::Value;

/// The context every run here asks for (`-c`); the CLI's executor then takes steps of
/// up to this many tokens, as the one built here does.
const CONTEXT: usize = 8;

fn exec(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rustorch-exec"));
    command
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    // The adapter gpu() opens.
    if let Ok(name) = std::env::var("RUSTORCH_ADAPTER") {
        command.args(["--adapter", &name]);
    }
    command.output().expect("rustorch-exec runs")
}

fn success_json(o: &Output) -> Value {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
}

/// The executor a GPU session of `CONTEXT` positions runs (x in 8 bits in the decode
/// matmuls: the CLI's default on a GPU).
fn session_executor<'a>(model: &'a Model, context: &'a GpuContext) -> GpuExecutor<'a> {
    let options = GpuOptions {
        max_tokens: CONTEXT,
        context: CONTEXT,
        kv_type: KvType::F16,
        decode_input: DecodeInput::Int8,
        round_once: true,
    };
    GpuExecutor::new(&model.graph_all, &model.gguf, context, options).unwrap()
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn profile_times_every_dispatch_of_both_steps() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let ctx = CONTEXT.to_string();
    let args = [
        "profile",
        path.to_str().unwrap(),
        "-p",
        "Hi there",
        "-c",
        &ctx,
        "--json",
    ];
    let o = exec(&args);
    if !context.has_timestamps() {
        common::assert_error(&o, "TIMESTAMP_QUERY");
        return;
    }
    let json = success_json(&o);
    let model = Model::load(&path).unwrap();
    let executor = session_executor(&model, context);
    let prompt = json["prompt_tokens"].as_array().unwrap().len();
    assert_eq!(
        json["dispatches_per_token"],
        executor.dispatch_count(1, prompt)
    );
    assert!(f64_of(&json["timestamp_period_ns"]) > 0.0);

    assert!(prompt > 1, "the prefill step should take several tokens");
    for (name, tokens, past) in [("prefill", prompt, 0), ("decode", 1, prompt)] {
        let step = &json[name];
        assert_eq!(step["tokens"], tokens, "{name}");
        assert_eq!(step["past"], past, "{name}");
        let dispatches = step["dispatches"].as_array().unwrap();
        let want: Vec<(&str, u64)> = executor
            .dispatch_reads(tokens, past)
            .map(|(_, label, bytes)| (label, bytes))
            .collect();
        assert_eq!(dispatches.len(), want.len(), "{name}: every dispatch");
        let mut sum = 0.0;
        for (i, (d, (label, weight_bytes))) in dispatches.iter().zip(&want).enumerate() {
            assert_eq!(d["index"], i, "{name}: in the order they ran");
            assert_eq!(d["label"], *label, "{name} #{i}");
            assert_eq!(d["weight_bytes"], *weight_bytes, "{name} #{i}");
            let us = f64_of(&d["gpu_us"]);
            assert!(us > 0.0, "{name} #{i} `{label}`: {us} µs");
            sum += us;
            if *weight_bytes > 0 {
                let rate = f64_of(&d["gb_s"]);
                let expected = *weight_bytes as f64 / us / 1e3;
                assert!((rate - expected).abs() <= 1e-9 * expected, "{name} #{i}");
            } else {
                assert!(d["gb_s"].is_null(), "{name} #{i}");
            }
        }
        let (gpu_us, wall_us) = (f64_of(&step["gpu_us"]), f64_of(&step["wall_us"]));
        assert!(
            (sum - gpu_us).abs() <= 1e-9 * sum,
            "{name}: {sum} vs {gpu_us}"
        );
        assert!(sum <= wall_us, "{name}: GPU {sum} µs > wall {wall_us} µs");
        assert!(f64_of(&step["span_us"]) <= wall_us, "{name}");
        assert!(f64_of(&step["unprofiled_wall_us"]) > 0.0, "{name}");
        // The step as one pass: timed, and every dispatch of it runs in that span.
        let one_pass = f64_of(&step["one_pass_us"]);
        assert!(one_pass > 0.0 && one_pass.is_finite(), "{name}: {one_pass}");
    }
    // A decode step reads every matmul weight once and one row of the embedding table
    // (SmolLM2's output reuses it): all the weights in the device layout (blocks
    // padded to words) but the norm vectors.
    let layouts = plan_weights(&[&model.graph_all], Target::Gpu, u64::MAX).unwrap();
    let device_bytes: u64 = layouts.iter().map(|w| w.device_bytes()).sum();
    let decode_bytes = executor.weight_bytes(1);
    assert!(
        decode_bytes <= device_bytes && decode_bytes as f64 > 0.99 * device_bytes as f64,
        "{decode_bytes} of {device_bytes}"
    );
}

#[test]
fn profile_refuses_bad_input_in_one_line() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    if gpu().is_none() {
        return;
    }
    let model = path.to_str().unwrap();
    common::assert_error(&exec(&["profile", model, "-p", ""]), "prompt is empty");
    common::assert_error(&exec(&["profile", "no-such.gguf"]), "no-such.gguf");
    // The default sentence and the token after it need more than 4 positions.
    common::assert_error(
        &exec(&["profile", model, "-c", "4"]),
        "do not fit the context of 4",
    );
}

#[test]
fn bench_reports_device_figures_on_a_gpu_only() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let Some(context) = gpu() else { return };
    let model_arg = path.to_str().unwrap();
    let ctx = CONTEXT.to_string();
    let bench_args = |backend: &str, depth: &str, decode_x: &str| {
        let args = [
            "bench",
            model_arg,
            "-p",
            "1",
            "-n",
            "1",
            "-r",
            "1",
            "-d",
            depth,
            "-c",
            &ctx,
            "--json",
            "--backend",
            backend,
            "--decode-x",
            decode_x,
        ];
        exec(&args)
    };
    let bench = |backend| success_json(&bench_args(backend, "0", "auto"));

    let json = bench("gpu");
    let report = &json["report"];
    let g = &report["gpu"];
    assert_eq!(g["int8_decode"], true);
    // The load to the first token: its phases add up to it, and the session's host
    // tasks fit in the session's time.
    let load = &json["load"];
    let phase = |name: &str| f64_of(&load[name]);
    let phases = ["file_ms", "device_ms", "session_ms", "first_step_ms"].map(phase);
    assert!(phases.iter().all(|&ms| ms > 0.0), "{load}");
    let total = f64_of(&json["load_ms"]);
    assert_eq!(total, phase("to_first_token_ms"));
    assert!((phases.iter().sum::<f64>() - total).abs() <= 1e-9 * total);
    let (weights, pipelines) = (phase("weights_ms"), phase("pipelines_ms"));
    assert!(weights > 0.0 && pipelines > 0.0 && weights + pipelines <= phase("session_ms"));
    let model = Model::load(&path).unwrap();
    let executor = session_executor(&model, context);
    let kv = executor.kv_cache().unwrap();
    assert_eq!(g["dispatches_per_token"], executor.dispatch_count(1, 0));
    assert_eq!(g["weight_bytes_per_token"], executor.weight_bytes(1));
    assert_eq!(
        g["allocated_bytes"],
        executor.allocated_bytes() + kv.bytes()
    );
    let copy_bytes = g["copy"]["bytes"].as_u64().unwrap();
    let cap = if context.is_software() { 64 } else { 256 } << 20;
    assert!(copy_bytes > 0 && copy_bytes <= cap.min(context.limits().max_buffer_size));
    let copy_gb_s = f64_of(&g["copy"]["gb_s"]);
    assert!(copy_gb_s > 0.0);
    assert!(g["copy_definition"]
        .as_str()
        .unwrap()
        .starts_with("bytes copied ÷ time"));
    let fraction = f64_of(&g["tg_bandwidth_fraction"]);
    let expected =
        executor.weight_bytes(1) as f64 * f64_of(&report["tg_tok_s"]["median"]) / (copy_gb_s * 1e9);
    assert!(
        fraction > 0.0 && (fraction - expected).abs() <= 1e-9 * expected,
        "{fraction} vs {expected}"
    );

    // The GPU time of a decode step in tg's context (lavapipe has timestamps), and
    // the share of tg's time it is.
    let step_us = f64_of(&g["tg_step_gpu_us"]);
    assert!(step_us > 0.0 && step_us.is_finite(), "{step_us}");
    let busy = f64_of(&g["tg_device_busy"]);
    let expected = step_us * f64_of(&report["tg_tok_s"]["median"]) / 1e6;
    assert!(
        busy > 0.0 && (busy - expected).abs() <= 1e-9 * expected,
        "{busy} vs {expected}"
    );

    let (arena, unshared) = executor.activation_bytes();
    assert_eq!(g["activation_bytes"], arena);
    assert_eq!(g["unshared_activation_bytes"], unshared);
    assert!(arena < unshared);

    let cpu = bench("cpu");
    assert!(cpu["report"]["gpu"].is_null());
    assert!(cpu["load"]["weights_ms"].is_null() && cpu["load"]["pipelines_ms"].is_null());
    // Tests after a few tokens of context, and a depth past the context is an error.
    assert_eq!(
        success_json(&bench_args("cpu", "5", "auto"))["report"]["depth"],
        5
    );
    common::assert_error(&bench_args("cpu", ctx.as_str(), "auto"), "context");
    let f32_decode = success_json(&bench_args("gpu", "0", "f32"));
    assert_eq!(f32_decode["report"]["gpu"]["int8_decode"], false);
}
