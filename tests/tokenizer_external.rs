//! `--tokenizer tokenizer.json`: accepted when its vocabulary is the model's (and
//! then encodes like the GGUF tokenizer), refused with a clear error when it is not
//! — by size, by a special token's id, or by any token's text.

mod common;

use std::path::PathBuf;

use rustorch::gguf::GgufFile;
use rustorch::tokenizer::{Tokenizer, TokenizerError};
use serde_json::{json, Map, Value};

/// SmolLM2's tokenizer.json, rebuilt from the GGUF file (as the converter read it).
fn smollm2_json(tokens: &[String], merges: &[String], types: &[i32]) -> Value {
    let vocab: Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<Value> = types
        .iter()
        .enumerate()
        .filter(|(_, &ty)| ty == 3)
        .map(|(i, _)| {
            json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rustorch-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir.join(name))
    }
    fn write(&self, v: &Value) -> &PathBuf {
        std::fs::write(&self.0, serde_json::to_vec(v).unwrap()).unwrap();
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn smollm2_external_tokenizer_checked_against_the_model() {
    let Some(path) = common::real_model(common::SMOLLM2) else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let meta = &file.header().metadata;
    let tokens = meta
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .to_vec();
    let merges = meta
        .get_str_array("tokenizer.ggml.merges")
        .unwrap()
        .to_vec();
    let types = meta
        .get_i32_array("tokenizer.ggml.token_type")
        .unwrap()
        .to_vec();
    let gguf = Tokenizer::from_gguf(&file).unwrap();

    // The right file is accepted and encodes as the GGUF tokenizer does.
    let good = Scratch::new("good.json");
    let mut ext = Tokenizer::from_gguf(&file).unwrap();
    ext.use_external(good.write(&smollm2_json(&tokens, &merges, &types)))
        .unwrap();
    assert!(ext.is_external());
    for text in [
        "Hello world",
        "I'm sure they'll say we've done what you'd've wanted.",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "pi is 3.14159 and e is 2.71828",
        "English, 中文, русский, العربية, and emoji 🎉 in one line.",
    ] {
        for parse_special in [true, false] {
            assert_eq!(
                ext.encode(text, true, parse_special).unwrap(),
                gguf.encode(text, true, parse_special).unwrap(),
                "{text:?} parse_special={parse_special}"
            );
        }
    }

    let refuse = |name: &str, doc: Value| -> String {
        let scratch = Scratch::new(name);
        let mut tok = Tokenizer::from_gguf(&file).unwrap();
        match tok.use_external(scratch.write(&doc)) {
            Err(e @ TokenizerError::Mismatch { .. }) => e.to_string(),
            other => panic!("{name}: expected a mismatch, got {other:?}"),
        }
    };

    // One token more: wrong size.
    let mut longer = tokens.clone();
    longer.push("<|extra|>".to_string());
    let err = refuse("longer.json", smollm2_json(&longer, &merges, &types));
    assert!(
        err.contains("49153 tokens but the model has 49152"),
        "{err}"
    );

    // <|im_start|> and <|im_end|> swapped: the model's bos id names another token.
    let mut swapped = tokens.clone();
    swapped.swap(1, 2);
    let err = refuse("specials.json", smollm2_json(&swapped, &merges, &types));
    assert!(
        err.contains("special token bos = 1 is \"<|im_start|>\" in the model but \"<|im_end|>\""),
        "{err}"
    );

    // Same size, same special tokens, two ordinary tokens trading ids — the
    // Llama-2-vocabulary-on-Mistral mistake in miniature.
    let mut swapped = tokens.clone();
    swapped.swap(1000, 2000);
    let err = refuse("normal.json", smollm2_json(&swapped, &merges, &types));
    assert!(err.contains("2 of 49152 token texts differ"), "{err}");
    assert!(err.contains("id 1000 is"), "{err}");

    // Not a tokenizer at all.
    let junk = Scratch::new("junk.json");
    let mut tok = Tokenizer::from_gguf(&file).unwrap();
    let err = tok
        .use_external(junk.write(&json!({"hello": 1})))
        .unwrap_err();
    assert!(matches!(err, TokenizerError::External { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("cannot load tokenizer"),
        "{err}"
    );
}
