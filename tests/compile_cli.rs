//! `rustorch-compile MODEL.gguf …` end to end on a toy model: the statistics, the
//! text dump with what each fused node replaced, `--dump-after`, and a plan file.

#[path = "support/tiny.rs"]
mod tiny;

use std::process::{Command, Output};

fn compile(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustorch-compile"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn stats_dumps_and_plan() {
    let dir = tiny::scratch("cli");
    let gguf = tiny::write(&tiny::llama(2, 2, 2, 128), &dir, "model.gguf", 3);
    let gguf = gguf.to_str().unwrap();

    let stats: serde_json::Value =
        serde_json::from_str(&stdout(&compile(&[gguf, "--stats-json"]))).unwrap();
    for key in [
        "nodes_before",
        "nodes_after",
        "dispatches_per_token",
        "dispatches_per_layer",
        "arena_bytes",
        "naive_intermediate_bytes",
        "kv_bytes",
        "kv_bytes_naive",
        "weight_bytes",
    ] {
        assert!(stats[key].as_u64().is_some(), "{key} missing from {stats}");
    }
    assert_eq!(stats["dispatches_per_layer"], 5);
    assert_eq!(stats["dispatches_per_layer_before"], 23);

    let text = stdout(&compile(&[gguf, "--dump-graph", "text"]));
    assert!(text.contains(
        "replaces  rms_norm blk.0.attn_norm.rms, mul_weight blk.0.attn_norm, matmul blk.0.attn_q"
    ));
    assert!(text.contains("@ arena[0x"));
    let after = stdout(&compile(&[gguf, "--dump-after", "attention"]));
    assert!(after.contains("attention(") && after.contains("rope("));

    let rtc = dir.join("model.rtc");
    stdout(&compile(&[
        gguf,
        "-o",
        rtc.to_str().unwrap(),
        "--ctx",
        "32",
    ]));
    assert!(rustorch::compiler::Plan::load(&rtc).is_ok());

    let bad = compile(&[gguf, "--dump-after", "no-such-pass"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("passes: norm-weight"));
    let info = stdout(&compile(&["info", gguf]));
    assert!(info.contains("architecture"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--emit-wgsl DIR`: one file per module the model may build (and the decode matmul's
/// variant for adapters with subgroups), each a complete module that naga validates as
/// it stands.
#[test]
fn emitted_wgsl_modules_stand_alone() {
    let dir = tiny::scratch("emit-wgsl");
    let gguf = tiny::write(&tiny::llama(2, 2, 2, 128), &dir, "model.gguf", 3);
    let out = dir.join("wgsl");
    stdout(&compile(&[
        gguf.to_str().unwrap(),
        "--emit-wgsl",
        out.to_str().unwrap(),
    ]));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for expected in [
        "matmul_q8_0.wgsl",
        "matmul_q8_0_subgroups.wgsl",
        "self_attention_f16.wgsl",
        "self_attention_f32.wgsl",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.starts_with("copy")), "{names:?}");
    use naga::valid::Capabilities;
    for name in &names {
        let source = std::fs::read_to_string(out.join(name)).unwrap();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        let mut caps = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        if name.ends_with("_subgroups.wgsl") {
            caps |= Capabilities::SUBGROUP;
        }
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
    }
}
