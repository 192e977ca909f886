//! `rustorch-exec tokenize` and `template`: output formats, defaults that match
//! llama.cpp, and errors as one `rustorch-exec: error: …` line with a non-zero exit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rustorch::gguf::{Array, GgufWriter, Value};
use serde_json::Value as Json;

/// The binary under test. `RUSTORCH_EXEC` overrides cargo's path, for checkouts
/// that share a target directory (where another branch's build can replace
/// `target/release/rustorch-exec` between the build and the test).
fn exec(args: &[&str]) -> Output {
    let bin = std::env::var_os("RUSTORCH_EXEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rustorch-exec")));
    Command::new(bin)
        .args(args)
        .output()
        .expect("rustorch-exec runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Asserts a failed run printed exactly one error line mentioning `needle`.
fn assert_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure");
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("rustorch-exec: error: "), "{err}");
    assert!(lines[0].contains(needle), "{err}");
}

fn fixture(name: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rustorch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn tokenize_outputs_match_llama_cpp() {
    let (Some(smollm), Some(gemma)) = (
        common::real_model(common::SMOLLM2),
        common::real_model(common::GEMMA3),
    ) else {
        return;
    };
    for (model, fx) in [
        (&smollm, "smollm2_tokenize.json"),
        (&gemma, "gemma3_tokenize.json"),
    ] {
        let fx = fixture(fx);
        let model = model.to_str().unwrap();
        for case in fx["cases"].as_array().unwrap().iter().step_by(5) {
            let text = case["text"].as_str().unwrap();
            if text.is_empty() {
                continue;
            }
            let o = exec(&["tokenize", model, "--text", text, "--json"]);
            assert!(o.status.success(), "{}", stderr(&o));
            let out: Json = serde_json::from_str(stdout(&o).trim()).unwrap();
            assert_eq!(out["tokens"], case["ids"], "{}", case["id"]);
            assert_eq!(
                out["pieces"].as_array().unwrap().len(),
                case["ids"].as_array().unwrap().len()
            );
            let o = exec(&[
                "tokenize",
                model,
                "--text",
                text,
                "--json",
                "--no-add-special",
                "--no-parse-special",
            ]);
            let out: Json = serde_json::from_str(stdout(&o).trim()).unwrap();
            assert_eq!(
                out["tokens"], case["ids_no_add_special_parse_special_false"],
                "{}",
                case["id"]
            );
        }
    }
    // Plain output: one id<TAB>piece line per token, pieces escaped.
    let o = exec(&[
        "tokenize",
        gemma.to_str().unwrap(),
        "--text",
        "Hello\nworld",
    ]);
    assert!(o.status.success());
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines[0], "2\t<bos>");
    assert!(lines.iter().any(|l| l.ends_with("\t\\n")), "{lines:?}");
    assert_eq!(
        o.stdout.iter().filter(|&&b| b == b'\t').count(),
        lines.len()
    );
}

#[test]
fn tokenize_file_input_and_errors() {
    let Some(model) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let model = model.to_str().unwrap();
    let good = scratch("good.txt");
    std::fs::write(&good, "Hello world").unwrap();
    let o = exec(&[
        "tokenize",
        model,
        "--file",
        good.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        r#"{"tokens":[19556,905],"pieces":["Hello"," world"]}"#
    );

    let bad = scratch("bad.txt");
    std::fs::write(&bad, b"caf\xe9 au lait").unwrap();
    let o = exec(&["tokenize", model, "--file", bad.to_str().unwrap()]);
    assert_error(
        &o,
        "not valid UTF-8: invalid byte sequence at byte offset 3",
    );

    let o = exec(&["tokenize", model, "--file", "/nonexistent/input.txt"]);
    assert_error(&o, "/nonexistent/input.txt");

    let o = exec(&["tokenize", model]);
    assert_eq!(o.status.code(), Some(2));
    assert_error(&o, "--text");

    let o = exec(&["tokenize", "/nonexistent/model.gguf", "--text", "x"]);
    assert_error(&o, "cannot read /nonexistent/model.gguf");

    let junk = scratch("junk.json");
    std::fs::write(&junk, "{\"not\": \"a tokenizer\"}").unwrap();
    let o = exec(&[
        "tokenize",
        model,
        "--text",
        "x",
        "--tokenizer",
        junk.to_str().unwrap(),
    ]);
    assert_error(&o, "cannot load tokenizer");
}

#[test]
fn template_prints_the_reference_prompts() {
    for (model, fx) in [
        (common::SMOLLM2, "smollm2_chat.json"),
        (common::GEMMA3, "gemma3_chat.json"),
    ] {
        let Some(path) = common::real_model(model) else {
            continue;
        };
        let fx = fixture(fx);
        for case in fx["cases"].as_array().unwrap() {
            if case["legacy"].as_bool().unwrap() {
                continue;
            }
            let o = exec(&[
                "template",
                path.to_str().unwrap(),
                "--user",
                case["user"].as_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            assert_eq!(stdout(&o), case["prompt"].as_str().unwrap());
        }
    }
}

/// A GGUF with only a tokenizer (no tensors) whose pre-tokenizer is unknown.
fn tiny_bpe_model(path: &Path, pre: &str) {
    let mut w = GgufWriter::new();
    let tokens: Vec<String> = (0..=255u8)
        .map(|b| rustorch::synth::byte_level_char(b).to_string())
        .collect();
    w.set("general.architecture", Value::String("llama".into()));
    w.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    w.set("tokenizer.ggml.pre", Value::String(pre.into()));
    w.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    w.set("tokenizer.ggml.merges", Value::Array(Array::String(vec![])));
    let file = std::fs::File::create(path).unwrap();
    w.write(file, |_, _, _| Ok(())).unwrap();
}

#[test]
fn unknown_pre_tokenizer_warns_and_uses_default() {
    let path = scratch("unknown-pre.gguf");
    tiny_bpe_model(&path, "made-up-pre");
    let o = exec(&[
        "tokenize",
        path.to_str().unwrap(),
        "--text",
        "hi 42",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("unknown pre-tokenizer tokenizer.ggml.pre = \"made-up-pre\"")
            && err.contains("falling back to \"default\""),
        "{err}"
    );
    let out: Json = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(out["tokens"].as_array().unwrap().len(), 5);
}
