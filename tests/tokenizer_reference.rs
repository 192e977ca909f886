//! Every tokenizer case llama.cpp recorded for the two real models
//! (`tests/fixtures/tokenizer/*_tokenize.json`, made by
//! `scripts/extract_tokenizer_fixtures.py`): ids in all four add_special /
//! parse_special modes, each token's bytes, detokenisation, and the special ids.

mod common;

use std::path::PathBuf;

use rustorch::tokenizer::{DetokenizeOptions, Tokenizer};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const MODES: [(&str, bool, bool); 4] = [
    ("ids", true, true),
    ("ids_no_add_special", false, true),
    ("ids_parse_special_false", true, false),
    ("ids_no_add_special_parse_special_false", false, false),
];

/// Checks every case; returns the failures (all of them, so one run shows the
/// whole picture) after printing a pass count per mode.
fn check_model(model_file: &str, fixture_name: &str) {
    let Some(path) = common::real_model(model_file) else {
        return;
    };
    let tok = Tokenizer::open(&path).unwrap();
    let fx = fixture(fixture_name);
    let model = &fx["model"];
    assert_eq!(tok.n_vocab() as u64, model["n_vocab"].as_u64().unwrap());
    assert_eq!(tok.add_bos(), model["add_bos"].as_bool().unwrap());
    assert_eq!(tok.add_eos(), model["add_eos"].as_bool().unwrap());
    let sp = tok.special();
    assert_eq!(sp.bos.map(u64::from), model["bos"].as_u64());
    assert_eq!(sp.eos.map(u64::from), model["eos"].as_u64());
    assert_eq!(sp.eot.map(u64::from), model["eot"].as_u64());
    assert_eq!(sp.eog, ids(&model["eog_ids"]));

    let mut failures = Vec::new();
    let cases = fx["cases"].as_array().unwrap();
    for (mode, add_special, parse_special) in MODES {
        let mut passed = 0;
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let want = ids(&case[mode]);
            let got = tok.encode(text, add_special, parse_special).unwrap();
            if got == want {
                passed += 1;
            } else {
                failures.push(format!(
                    "{} {mode} {text:?}:\n  want {want:?}\n  got  {got:?}",
                    case["id"]
                ));
            }
        }
        eprintln!(
            "{fixture_name}: {mode}: {passed}/{} cases match",
            cases.len()
        );
    }

    let mut detok_ok = 0;
    for case in cases {
        let name = &case["id"];
        let want_ids = ids(&case["ids"]);
        let pieces: Vec<String> = want_ids
            .iter()
            .map(|&id| hex(tok.piece(id, true).unwrap()))
            .collect();
        let want_pieces: Vec<String> = case["pieces_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let mut ok = true;
        if pieces != want_pieces {
            ok = false;
            failures.push(format!(
                "{name} pieces:\n  want {want_pieces:?}\n  got  {pieces:?}"
            ));
        }
        let rendered: Vec<u8> = want_ids
            .iter()
            .flat_map(|&id| tok.piece(id, false).unwrap().to_vec())
            .collect();
        let checks = [
            (
                "detok_render_special_false",
                String::from_utf8_lossy(&rendered).into_owned(),
            ),
            (
                "detokenize_keep_special",
                tok.decode(
                    &want_ids,
                    DetokenizeOptions {
                        remove_special: false,
                        unparse_special: true,
                    },
                )
                .unwrap(),
            ),
            (
                "detokenize_remove_special",
                tok.decode(
                    &want_ids,
                    DetokenizeOptions {
                        remove_special: true,
                        unparse_special: false,
                    },
                )
                .unwrap(),
            ),
        ];
        for (field, got) in checks {
            let want = case[field].as_str().unwrap();
            if got != want {
                ok = false;
                failures.push(format!("{name} {field}:\n  want {want:?}\n  got  {got:?}"));
            }
        }
        detok_ok += usize::from(ok);
    }
    eprintln!(
        "{fixture_name}: pieces and detokenisation: {detok_ok}/{} cases match",
        cases.len()
    );

    let prompts = fx["prompts"].as_array().unwrap();
    let mut prompts_ok = 0;
    for p in prompts {
        let want = ids(&p["ids"]);
        let got = tok.encode(p["text"].as_str().unwrap(), true, true).unwrap();
        if got == want {
            prompts_ok += 1;
        } else {
            failures.push(format!(
                "{} prompt:\n  want {want:?}\n  got  {got:?}",
                p["id"]
            ));
        }
    }
    eprintln!(
        "{fixture_name}: generation prompts: {prompts_ok}/{} match",
        prompts.len()
    );

    assert!(
        failures.is_empty(),
        "{} mismatches with llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model(common::SMOLLM2, "smollm2_tokenize.json");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_model(common::GEMMA3, "gemma3_tokenize.json");
}
