//! Chat prompts render byte-identically to llama.cpp's: SmolLM2 from its own Jinja
//! template (and its legacy built-in detection), Gemma 3 — whose file has no
//! template — from the built-in `gemma` format.

mod common;

use std::path::PathBuf;

use rustorch::gguf::GgufFile;
use rustorch::tokenizer::chat::Builtin;
use rustorch::tokenizer::{ChatMessage, ChatTemplate, Tokenizer};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn template_of(model: &str) -> Option<(GgufFile, Tokenizer, ChatTemplate)> {
    let path = common::real_model(model)?;
    let file = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let template = ChatTemplate::for_model(&file.header().metadata, &tok).unwrap();
    Some((file, tok, template))
}

#[test]
fn smollm2_prompts_match_llama_cpp() {
    let Some((file, tok, template)) = template_of(common::SMOLLM2) else {
        return;
    };
    assert!(
        matches!(template, ChatTemplate::Jinja { .. }),
        "{template:?}"
    );
    let source = file
        .header()
        .metadata
        .get_str("tokenizer.chat_template")
        .unwrap();
    let fx = fixture("smollm2_chat.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let messages = [ChatMessage::new("user", case["user"].as_str().unwrap())];
        let want = case["prompt"].as_str().unwrap();
        let got = if case["legacy"].as_bool().unwrap() {
            // llama_chat_apply_template's heuristic reads this template as ChatML.
            let builtin = Builtin::detect(source).unwrap();
            assert_eq!(builtin, Builtin::ChatMl);
            ChatTemplate::Builtin(builtin)
                .render(&messages, true)
                .unwrap()
        } else {
            template.render(&messages, true).unwrap()
        };
        assert_eq!(got, want, "{}", case["id"]);
        // And the prompt tokenises (add_special, parse_special) into turn markers.
        let ids = tok.encode(&got, true, true).unwrap();
        assert_eq!(ids[0], tok.vocab().id("<|im_start|>").unwrap());
    }
}

#[test]
fn gemma3_prompts_match_llama_cpp_builtin() {
    let Some((_file, _tok, template)) = template_of(common::GEMMA3) else {
        return;
    };
    assert_eq!(template, ChatTemplate::Builtin(Builtin::Gemma));
    let fx = fixture("gemma3_chat.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let messages = [ChatMessage::new("user", case["user"].as_str().unwrap())];
        let got = template.render(&messages, true).unwrap();
        assert_eq!(got, case["prompt"].as_str().unwrap(), "{}", case["id"]);
    }
}

fn jinja(source: &str) -> ChatTemplate {
    ChatTemplate::Jinja {
        source: source.to_string(),
        bos_token: "<s>".to_string(),
        eos_token: "</s>".to_string(),
        strip_bos: true,
        strip_eos: false,
    }
}

#[test]
fn jinja_globals_and_filters() {
    let user = [ChatMessage::new("user", "héllo \"x\"")];
    // tojson: Python's separators and non-ASCII kept.
    let t = jinja("{{ messages[0] | tojson }}");
    assert_eq!(
        t.render(&user, false).unwrap(),
        r#"{"role": "user", "content": "héllo \"x\""}"#
    );
    let t = jinja("{{ messages | tojson(indent=2) }}");
    assert_eq!(
        t.render(&user, false).unwrap(),
        "[\n  {\n    \"role\": \"user\",\n    \"content\": \"héllo \\\"x\\\"\"\n  }\n]"
    );
    // raise_exception surfaces as an error naming the message.
    let t = jinja(
        "{% if messages[0]['role'] == 'user' %}{{ raise_exception('no users here') }}{% endif %}",
    );
    let err = t.render(&user, false).unwrap_err().to_string();
    assert!(err.contains("no users here"), "{err}");
    // strftime_now formats today's date.
    let t = jinja("{{ strftime_now('%Y') }}");
    let year: i32 = t.render(&user, false).unwrap().parse().unwrap();
    assert!(year >= 2024);
    // A BOS the template writes is dropped when the tokenizer adds one itself.
    let t = jinja("{{ bos_token }}{% for m in messages %}[{{ m.content | trim }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}\n");
    assert_eq!(t.render(&user, true).unwrap(), "[héllo \"x\"]>");
    // Python string methods work, blocks are trimmed like HF/llama.cpp.
    let t = jinja("{% for m in messages %}\n  {{ m.content.upper() }}\n{% endfor %}");
    assert_eq!(t.render(&user, false).unwrap(), "  HÉLLO \"X\"\n");
    // add_generation_prompt is undefined, not false, when off (as in llama.cpp);
    // booleans print the Python way.
    let t = jinja("{{ add_generation_prompt is defined }}");
    assert_eq!(t.render(&user, false).unwrap(), "False");
    assert_eq!(t.render(&user, true).unwrap(), "True");
    // A template that does not parse is a clear error.
    let err = jinja("{% for %}")
        .render(&user, false)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("chat template:"), "{err}");
}

#[test]
fn builtins_render_known_formats() {
    let conv = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello."),
        ChatMessage::new("user", "Bye"),
    ];
    let render = |b: Builtin| ChatTemplate::Builtin(b).render(&conv, true).unwrap();
    assert_eq!(
        render(Builtin::ChatMl),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        render(Builtin::Gemma),
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
    assert_eq!(
        render(Builtin::Llama3),
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    assert_eq!(
        render(Builtin::Llama2Sys),
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello.</s>[INST] Bye [/INST]"
    );
    assert_eq!(
        render(Builtin::MistralV7),
        "[SYSTEM_PROMPT] Be brief.[/SYSTEM_PROMPT][INST] Hi[/INST] Hello.</s>[INST] Bye[/INST]"
    );
    assert_eq!(
        render(Builtin::MistralV3),
        "[INST] Be brief.\n\nHi[/INST] Hello.</s>[INST] Bye[/INST]"
    );
    assert_eq!(
        render(Builtin::MistralV1),
        " [INST] Be brief.\n\nHi [/INST] Hello.</s> [INST] Bye [/INST]"
    );
}

#[test]
fn builtin_choice_follows_the_vocabulary() {
    let pick = |tokens: &[&str], name: &str| Builtin::for_vocabulary(|t| tokens.contains(&t), name);
    assert_eq!(
        pick(&["<start_of_turn>", "<end_of_turn>"], ""),
        Builtin::Gemma
    );
    assert_eq!(
        pick(&["<|start_header_id|>", "<|end_header_id|>"], ""),
        Builtin::Llama3
    );
    assert_eq!(pick(&["<|im_start|>", "<|im_end|>"], ""), Builtin::ChatMl);
    assert_eq!(pick(&["[INST]", "[/INST]"], ""), Builtin::MistralV3);
    assert_eq!(
        pick(&["</s>"], "Mistral-7B-Instruct-v0.1"),
        Builtin::MistralV1
    );
    assert_eq!(pick(&["</s>"], "Llama-2-7b-chat"), Builtin::Llama2);
    assert_eq!(pick(&[], "something"), Builtin::ChatMl);
    assert_eq!(
        Builtin::detect("{{ '<start_of_turn>' }}"),
        Some(Builtin::Gemma)
    );
    assert_eq!(Builtin::detect("llama3"), Some(Builtin::Llama3));
    assert_eq!(Builtin::detect("no markers"), None);
}

#[test]
fn strftime_formats_known_dates() {
    use rustorch::tokenizer::chat::strftime::{strftime, Civil};
    let t = Civil::from_unix(0);
    assert_eq!(
        strftime("%Y-%m-%d %H:%M:%S %A %j", t),
        "1970-01-01 00:00:00 Thursday 001"
    );
    // 2024-02-29 12:34:56 UTC, a leap day and a Thursday.
    let t = Civil::from_unix(1_709_210_096);
    assert_eq!(strftime("%d %b %Y", t), "29 Feb 2024");
    assert_eq!(strftime("%a %I%p %j %% %q", t), "Thu 12PM 060 % %q");
    // 2026-12-31, day 365 of a common year.
    let t = Civil::from_unix(1_798_675_200);
    assert_eq!(strftime("%F %B %e", t), "2026-12-31 December 31");
    assert_eq!(t.yday, 365);
    // Before 1970.
    assert_eq!(
        strftime("%F %T", Civil::from_unix(-1)),
        "1969-12-31 23:59:59"
    );
}
