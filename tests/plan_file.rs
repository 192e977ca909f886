//! The `.rtc` plan: a model loads from it exactly as from its GGUF, and a stale
//! GGUF, another format version or a corrupted plan is a clear error.

mod common;
#[path = "support/tiny.rs"]
mod tiny;

use std::path::{Path, PathBuf};

use rustorch::compiler::{compile, CompileOptions, Plan, PlanError};
use rustorch::gguf::GgufFile;
use rustorch::runtime::{DecodeInput, KvType, LoadError, Model};

fn write_plan(gguf: &Path, out: &Path) -> Plan {
    let file = GgufFile::open(gguf).unwrap();
    let plan = compile(&file, &CompileOptions::default(), |_, _| {}).unwrap();
    plan.save(out).unwrap();
    plan
}

/// A toy model and its plan in a scratch directory.
fn tiny_plan(test: &str) -> (PathBuf, PathBuf) {
    let dir = tiny::scratch(test);
    let gguf = tiny::write(&tiny::gemma3(2, 64, 2, 4), &dir, "model.gguf", 1);
    let rtc = dir.join("model.rtc");
    write_plan(&gguf, &rtc);
    (gguf, rtc)
}

fn load_error(path: &Path) -> PlanError {
    match Model::load(path) {
        Err(LoadError::Plan(e)) => e,
        Err(other) => panic!("expected a plan error, got {other}"),
        Ok(_) => panic!("{} loaded", path.display()),
    }
}

#[test]
fn a_plan_runs_exactly_as_its_gguf() {
    let (gguf, rtc) = tiny_plan("same-as-gguf");
    let tokens = [5, 17, 230, 9, 44, 101, 3];
    let mut logits = Vec::new();
    for path in [&gguf, &rtc] {
        let model = Model::load(path).unwrap();
        let mut session = model
            .session(Some(32), KvType::F16, DecodeInput::F32)
            .unwrap();
        let mut all = session.logits_all(&tokens).unwrap();
        all.extend(session.logits_last(&[7]).unwrap());
        logits.push(all);
    }
    assert_eq!(logits[0], logits[1]);
}

#[test]
fn a_plan_refuses_a_changed_gguf() {
    let (gguf, rtc) = tiny_plan("stale");
    tiny::write(
        &tiny::gemma3(3, 64, 2, 4),
        gguf.parent().unwrap(),
        "model.gguf",
        1,
    );
    let err = load_error(&rtc);
    assert!(matches!(err, PlanError::StaleModel { .. }), "{err}");
    assert!(err.to_string().contains("recompile"), "{err}");
}

#[test]
fn a_plan_of_another_format_version_is_refused() {
    let (_, rtc) = tiny_plan("version");
    let mut bytes = std::fs::read(&rtc).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&rtc, &bytes).unwrap();
    let err = load_error(&rtc);
    assert!(
        matches!(err, PlanError::UnsupportedVersion { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn corrupted_plans_are_errors_not_panics() {
    let (_, rtc) = tiny_plan("corrupted");
    let good = std::fs::read(&rtc).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    let truncated = good[..good.len() - 10].to_vec();
    let short_header = good[..16].to_vec();
    for bad in [flipped, truncated, short_header] {
        let err = Plan::from_bytes(&bad, "bad.rtc").unwrap_err();
        assert!(matches!(err, PlanError::Corrupted { .. }), "{err}");
        assert!(err.to_string().starts_with("bad.rtc is corrupted"), "{err}");
    }
    // A payload that hashes right but is not a plan.
    let payload = b"{\"model\": 3}";
    let mut forged = good[..12].to_vec();
    forged.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    forged.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    forged.extend_from_slice(payload);
    let err = Plan::from_bytes(&forged, "forged.rtc").unwrap_err();
    assert!(matches!(err, PlanError::Corrupted { .. }), "{err}");
}

/// Both real models through a `.rtc`: logits bit-identical to the `.gguf`'s on the
/// reference prompts (which `reference_logits.rs` checks against llama.cpp).
fn real_model_through_plan(file: &str, reference_dir: &str) {
    let Some(gguf) = common::real_model(file) else {
        return;
    };
    let dir = tiny::scratch(reference_dir);
    let rtc = dir.join("model.rtc");
    write_plan(&gguf, &rtc);
    let from_gguf = Model::load(&gguf).unwrap();
    let from_plan = Model::load(&rtc).unwrap();
    let path = format!(
        "{}/tests/fixtures/reference/{reference_dir}/logits.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in reference["cases"].as_array().unwrap().iter().take(3) {
        let ids = match &case["prompt_ids"] {
            serde_json::Value::String(s) => serde_json::from_str(s).unwrap(),
            other => other.clone(),
        };
        let prompt: Vec<u32> = serde_json::from_value(ids).unwrap();
        let run = |model: &Model| {
            let mut s = model
                .session(Some(2048), KvType::F16, DecodeInput::F32)
                .unwrap();
            s.logits_all(&prompt).unwrap()
        };
        assert_eq!(run(&from_gguf), run(&from_plan), "{}", case["id"]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn smollm2_through_a_plan_equals_its_gguf() {
    real_model_through_plan(common::SMOLLM2, "smollm2-135m-instruct-q4_1");
}

#[test]
fn gemma3_through_a_plan_equals_its_gguf() {
    real_model_through_plan(common::GEMMA3, "gemma-3-270m-q4_k_m");
}
