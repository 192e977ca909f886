//! Perplexity on both real models within 1.5% of llama.cpp's for every (text, ctx)
//! in the reference data (llama-perplexity's method; fixtures copied from it).

mod common;

use rustorch::text::LanguageModel;

fn check(model_file: &str, model_dir: &str) {
    let Some(path) = common::real_model(model_file) else {
        return;
    };
    let lm = LanguageModel::load(path).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let reference = common::reference(model_dir, "perplexity.json");
    let bos = lm
        .tokenizer
        .add_bos()
        .then(|| lm.tokenizer.special().bos)
        .flatten();
    for case in reference["cases"].as_array().unwrap() {
        let file = case["text_file"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        let text = std::fs::read(format!("{root}/tests/fixtures/texts/{file}")).unwrap();
        let tokens = lm.tokenizer.encode_bytes(&text, true, false).unwrap();
        assert_eq!(
            tokens.len() as u64,
            case["n_text_tokens"].as_u64().unwrap(),
            "{}",
            case["id"]
        );
        let ctx = case["n_ctx"].as_u64().unwrap() as usize;
        let ours = rustorch::runtime::perplexity(&lm.model, &tokens, ctx, bos, |_, _| {}).unwrap();
        let theirs = case["ppl"].as_f64().unwrap();
        let relative = (ours.ppl - theirs).abs() / theirs;
        eprintln!(
            "{}: {:.4} vs llama.cpp {theirs} ({:.2}%)",
            case["id"],
            ours.ppl,
            100.0 * relative
        );
        assert_eq!(ours.chunks as u64, case["n_chunks"].as_u64().unwrap());
        assert_eq!(
            ours.scored_tokens as u64,
            case["n_scored_tokens"].as_u64().unwrap()
        );
        assert!(relative < 0.015, "{}: {} vs {theirs}", case["id"], ours.ppl);
    }
}

#[test]
fn smollm2_perplexity_matches_llama_cpp() {
    check(common::SMOLLM2, "smollm2-135m-instruct-q4_1");
}

#[test]
fn gemma3_perplexity_matches_llama_cpp() {
    check(common::GEMMA3, "gemma-3-270m-q4_k_m");
}
