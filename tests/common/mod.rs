//! Shared by the integration tests: where the real models are, and what to do when
//! they are not there (fail under CI, skip loudly elsewhere).

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// The path of a real model, or `None` (after a loud message) when it is missing
/// outside CI. Under `CI=true` a missing model fails the test.
pub fn real_model(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("RUSTORCH_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "{} is missing: run scripts/fetch-models.sh (or set RUSTORCH_MODELS)",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("\n*** SKIPPED: {message} ***\n");
    None
}

/// A file of llama.cpp's reference data, copied under `tests/fixtures/reference/`.
pub fn reference(model_dir: &str, file: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/fixtures/reference/{model_dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The items of a reference list; some fixture fields hold the list as a JSON string.
fn items(v: &serde_json::Value) -> Vec<serde_json::Value> {
    let v = match v {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    v.as_array().unwrap().clone()
}

/// A reference list of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    items(v)
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A reference list of numbers.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    items(v).iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Asserts a failed run whose last stderr line is our one-line error mentioning `needle`.
pub fn assert_error(o: &std::process::Output, needle: &str) {
    assert!(!o.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("rustorch-exec: error: ") && last.contains(needle),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
