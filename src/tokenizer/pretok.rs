//! Byte-level BPE pre-tokenisers, chosen by `tokenizer.ggml.pre`: which regexes cut
//! the text into words before merging, plus the flags that go with each family.
//!
//! The regexes are the models' own (from their `tokenizer.json`), in the form and
//! order llama.cpp applies them (`llm_tokenizer_bpe` in `src/llama-vocab.cpp`): each
//! regex splits every piece the previous one produced, keeping both the matches and
//! the text between them.

/// GPT-2's word regex. (llama.cpp's hand-coded matcher for it also takes a lone
/// whitespace run, which the trailing `|\s+` expresses.)
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's word regex, with the case-insensitive contractions spelt out.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen 2's word regex: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// BLOOM-style: words with an optional leading space, stopping at punctuation.
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

const DEEPSEEK_LETTERS: &str = r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
const DEEPSEEK_CJK: &str = r"[一-龥ࠀ-一가-퟿]+";

/// One pre-tokeniser family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreTokenizer {
    /// The canonical name (the first of `names`).
    pub name: &'static str,
    /// The `tokenizer.ggml.pre` values that select it.
    pub names: &'static [&'static str],
    /// Regexes applied in order.
    pub regexes: &'static [&'static str],
    /// Whether detokenising tidies spaces before punctuation (llama.cpp's
    /// `clean_spaces`).
    pub clean_spaces: bool,
    /// Whether a whole word that is already a token skips merging.
    pub ignore_merges: bool,
    /// Whether this family adds BOS unless the file says otherwise.
    pub add_bos: bool,
}

const fn family(
    names: &'static [&'static str],
    regexes: &'static [&'static str],
    clean_spaces: bool,
) -> PreTokenizer {
    PreTokenizer {
        name: names[0],
        names,
        regexes,
        clean_spaces,
        ignore_merges: false,
        add_bos: false,
    }
}

/// Every supported family. `default` comes first and is the fallback.
pub const PRE_TOKENIZERS: &[PreTokenizer] = &[
    family(
        &["default"],
        &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
        true,
    ),
    PreTokenizer {
        ignore_merges: true,
        add_bos: true,
        ..family(
            &[
                "llama-bpe",
                "llama3",
                "llama-v3",
                "falcon3",
                "falcon-h1",
                "pixtral",
                "midm-2.0",
                "lfm2",
            ],
            &[LLAMA3],
            true,
        )
    },
    family(&["dbrx", "smaug-bpe"], &[LLAMA3], true),
    family(
        &["deepseek-llm"],
        &[
            r"[\r\n]",
            DEEPSEEK_LETTERS,
            r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
            r"\s+$",
            DEEPSEEK_CJK,
            r"\p{N}+",
        ],
        false,
    ),
    family(
        &["deepseek-coder"],
        &[
            r"[\r\n]",
            r"\s?\p{L}+",
            r"\s?\p{P}+",
            DEEPSEEK_CJK,
            r"\p{N}",
        ],
        false,
    ),
    family(
        &["falcon"],
        &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
        true,
    ),
    family(
        &["starcoder", "refact", "codeshell", "exaone", "minerva-7b"],
        &[r"\p{N}", GPT2],
        true,
    ),
    family(&["smollm", "command-r"], &[r"\p{N}", GPT2], false),
    family(
        &[
            "gpt-2",
            "phi-2",
            "jina-es",
            "jina-de",
            "gigachat",
            "jina-v2-es",
            "jina-v2-de",
            "a.x-4.0",
            "mellum",
            "modern-bert",
            "jina-v1-en",
            "jina-v2-code",
            "roberta-bpe",
            "exaone4",
            "mpt",
            "olmo",
            "jais",
        ],
        &[GPT2],
        true,
    ),
    family(&["trillion", "granite-docling"], &[GPT2], false),
    family(
        &["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2"],
        &[QWEN2],
        false,
    ),
    family(&["stablelm2", "megrez"], &[QWEN2], true),
    family(&["bloom", "gpt3-finnish"], &[BLOOM], true),
    family(&["poro-chat"], &[BLOOM], false),
    family(&["viking"], &[BLOOM, r"\p{N}"], false),
];

impl PreTokenizer {
    /// The family for a `tokenizer.ggml.pre` value, if rustorch knows it.
    pub fn find(pre: &str) -> Option<&'static PreTokenizer> {
        PRE_TOKENIZERS.iter().find(|p| p.names.contains(&pre))
    }

    /// The family for a `tokenizer.ggml.pre` value; an absent or unknown value
    /// falls back to `default` with a warning on stderr.
    pub fn select(pre: Option<&str>) -> &'static PreTokenizer {
        let default = &PRE_TOKENIZERS[0];
        match pre {
            None => {
                eprintln!(
                    "rustorch: warning: the model has no tokenizer.ggml.pre; using the \
                     \"default\" pre-tokenizer (tokens may differ from the model's training)"
                );
                default
            }
            Some(name) => PreTokenizer::find(name).unwrap_or_else(|| {
                eprintln!(
                    "rustorch: warning: unknown pre-tokenizer tokenizer.ggml.pre = {name:?}; \
                     falling back to \"default\" (tokens may differ from the model's training)"
                );
                default
            }),
        }
    }
}
