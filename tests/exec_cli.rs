//! `rustorch-exec` end to end on SmolLM2: the chat answer, generation's JSON, and bad
//! input (empty prompt, a prompt longer than the context, `--top-p 2`, `-n 0`, a
//! model with a missing tensor) as one clear error line or a documented result.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

fn exec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustorch-exec"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("rustorch-exec runs")
}

#[test]
fn chat_answers_the_capital_of_france() {
    let Some(model) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let model = model.to_str().unwrap();
    let o = exec(&[
        "chat",
        model,
        "-p",
        "What is the capital of France?",
        "--temp",
        "0",
        "-n",
        "32",
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let answer = String::from_utf8(o.stdout).unwrap();
    assert!(answer.contains("Paris"), "{answer}");
}

#[test]
fn generate_prints_json_and_stops_at_the_limit() {
    let Some(model) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let model = model.to_str().unwrap();
    let o = exec(&[
        model,
        "-p",
        "The capital of France is",
        "--temp",
        "0",
        "-n",
        "4",
        "--json",
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        json["prompt_tokens"],
        serde_json::json!([504, 3575, 282, 4649, 314])
    );
    assert_eq!(json["tokens"].as_array().unwrap().len(), 4);
    assert_eq!(json["stop"], "length");
    assert!(json["text"].as_str().unwrap().starts_with(" Paris"));
    assert!(json["timings"]["gen_tok_s"].as_f64().unwrap() > 0.0);

    // -n 0: the prompt runs, nothing is generated.
    let o = exec(&[model, "-p", "Hi", "-n", "0", "--json", "--backend", "cpu"]);
    assert!(o.status.success());
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["tokens"], serde_json::json!([]));
}

#[test]
fn bad_input_is_one_clear_error() {
    let Some(model) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let model = model.to_str().unwrap();
    common::assert_error(
        &exec(&[model, "-p", "", "--backend", "cpu"]),
        "prompt is empty",
    );
    common::assert_error(
        &exec(&[
            model,
            "-p",
            "one two three four five six",
            "-c",
            "4",
            "--backend",
            "cpu",
        ]),
        "do not fit the context of 4",
    );
    common::assert_error(
        &exec(&[model, "-p", "Hi", "--top-p", "2", "--backend", "cpu"]),
        "--top-p must be in [0, 1]",
    );
    common::assert_error(
        &exec(&["generate", "no-such.gguf", "-p", "Hi"]),
        "no-such.gguf",
    );

    // A copy of the model's header without `blk.0.attn_q.weight` in its tensor table.
    let bytes = std::fs::read(common::real_model(common::SMOLLM2).unwrap()).unwrap();
    let name = b"blk.0.attn_q.weight";
    let renamed = bytes.windows(name.len()).position(|w| w == name).unwrap();
    let mut broken = bytes.clone();
    broken[renamed..renamed + 5].copy_from_slice(b"xxx.0");
    let path = std::env::temp_dir().join("rustorch-missing-tensor.gguf");
    std::fs::write(&path, &broken).unwrap();
    let o = exec(&[path.to_str().unwrap(), "-p", "Hi", "--backend", "cpu"]);
    std::fs::remove_file(&path).ok();
    common::assert_error(&o, "tensor `blk.0.attn_q.weight` is missing");
}
