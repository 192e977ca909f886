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
const BLOOM: &str = " ?[^(\\s|.,!?\u{2026}\u{3002}\u{ff0c}\u{3001}\u{964}\u{6d4}\u{60c})]+";

// Non-ASCII characters are written as escapes: several of them (U+1FD3, U+2126,
// U+212A, …) have canonical decompositions, and an editor that normalises text
// would silently turn these ranges into empty ones.
const DEEPSEEK_LETTERS: &str = "\\s?[A-Za-z\u{b5}\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{1ba}\u{1bc}-\u{1bf}\u{1c4}-\u{293}\u{295}-\u{2af}\u{370}-\u{373}\u{376}\u{377}\u{37b}-\u{37d}\u{37f}\u{386}\u{388}-\u{38a}\u{38c}\u{38e}-\u{3a1}\u{3a3}-\u{3f5}\u{3f7}-\u{481}\u{48a}-\u{52f}\u{531}-\u{556}\u{10a0}-\u{10c5}\u{13a0}-\u{13f5}\u{13f8}-\u{13fd}\u{1c90}-\u{1cba}\u{1cbd}-\u{1cbf}\u{1d00}-\u{1d2b}\u{1d6b}-\u{1d77}\u{1d79}-\u{1d9a}\u{1e00}-\u{1f15}\u{1f18}-\u{1f1d}\u{1f20}-\u{1f45}\u{1f48}-\u{1f4d}\u{1f50}-\u{1f57}\u{1f59}\u{1f5b}\u{1f5d}\u{1f5f}-\u{1f7d}\u{1f80}-\u{1fb4}\u{1fb6}-\u{1fbc}\u{1fbe}\u{1fc2}-\u{1fc4}\u{1fc6}-\u{1fcc}\u{1fd0}-\u{1fd3}\u{1fd6}-\u{1fdb}\u{1fe0}-\u{1fec}\u{1ff2}-\u{1ff4}\u{1ff6}-\u{1ffc}\u{2102}\u{2107}\u{210a}-\u{2113}\u{2115}\u{2119}-\u{211d}\u{2124}\u{2126}\u{2128}\u{212a}-\u{212d}\u{212f}-\u{2134}\u{2139}\u{213c}-\u{213f}\u{2145}-\u{2149}\u{214e}\u{2183}\u{2184}\u{2c00}-\u{2c7b}\u{2c7e}-\u{2ce4}\u{2ceb}-\u{2cee}\u{2cf2}\u{2cf3}\u{a640}-\u{a66d}\u{a680}-\u{a69b}\u{a722}-\u{a76f}\u{a771}-\u{a787}\u{a78b}-\u{a78e}\u{ab70}-\u{abbf}\u{fb00}-\u{fb06}\u{fb13}-\u{fb17}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+";
const DEEPSEEK_CJK: &str = "[\u{4e00}-\u{9fa5}\u{800}-\u{4e00}\u{ac00}-\u{d7ff}]+";

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
            "\\s?[!-/:-~\u{ff01}-\u{ff0f}\u{ff1a}-\u{ff5e}\u{2018}-\u{201f}\u{3000}-\u{3002}]+",
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
