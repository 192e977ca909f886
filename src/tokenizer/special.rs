//! Special token ids (`tokenizer.ggml.*_token_id`), the ones found by their text
//! when the file does not name them, and the end-of-generation set, derived as
//! llama.cpp derives it (`src/llama-vocab.cpp`, vocabulary loading).

use std::collections::BTreeSet;

use super::error::Result;
use super::vocab::{Attrs, Vocab};
use crate::gguf::Metadata;

/// The special tokens of a model. `None` means the model has no such token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// End of turn (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, …).
    pub eot: Option<u32>,
    /// End of message (Llama 3.1 `<|eom_id|>`).
    pub eom: Option<u32>,
    /// Unknown.
    pub unk: Option<u32>,
    /// Separator.
    pub sep: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// Mask.
    pub mask: Option<u32>,
    /// Fill-in-the-middle: prefix.
    pub fim_pre: Option<u32>,
    /// Fill-in-the-middle: suffix.
    pub fim_suf: Option<u32>,
    /// Fill-in-the-middle: middle.
    pub fim_mid: Option<u32>,
    /// Fill-in-the-middle: padding.
    pub fim_pad: Option<u32>,
    /// Fill-in-the-middle: repository name.
    pub fim_rep: Option<u32>,
    /// Fill-in-the-middle: file separator.
    pub fim_sep: Option<u32>,
    /// Every token that ends generation, in increasing order.
    pub eog: Vec<u32>,
}

/// Ids a tokenizer family assumes when the file names none.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Defaults {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
}

// Texts by which a token is recognised when the file does not name its id. These
// lists are the model conventions llama.cpp recognises (it has no other source for
// them: converters write few of these ids).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that end generation whatever the file says.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
/// gpt-oss markers that must always be rendered, so they are made user-defined.
const ALWAYS_RENDERED: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

impl SpecialTokens {
    /// Reads the ids the file names (falling back to `defaults`), finds the unnamed
    /// ones by their text, adjusts token attributes the way llama.cpp does (tokens
    /// that look like turn markers become control tokens, control tokens named
    /// "unused" become unused), and derives the end-of-generation set.
    pub(crate) fn derive(
        meta: &Metadata,
        vocab: &mut Vocab,
        defaults: Defaults,
    ) -> Result<SpecialTokens> {
        let n = vocab.len();
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let read = |key: &str, default: Option<u32>| -> Result<Option<u32>> {
            let default = in_range(default);
            match meta.optional(key, Metadata::get_u32)? {
                None => Ok(default),
                Some(id) if (id as usize) < n => Ok(Some(id)),
                Some(id) => {
                    eprintln!(
                        "rustorch: warning: {key} = {id} is outside the vocabulary ({n} tokens); \
                         using {default:?}"
                    );
                    Ok(default)
                }
            }
        };
        let key = |name: &str| format!("tokenizer.ggml.{name}");
        let mut s = SpecialTokens {
            bos: read(&key("bos_token_id"), defaults.bos)?,
            eos: read(&key("eos_token_id"), defaults.eos)?,
            eot: read(&key("eot_token_id"), None)?,
            eom: read(&key("eom_token_id"), None)?,
            unk: read(&key("unknown_token_id"), defaults.unk)?,
            sep: read(&key("seperator_token_id"), None)?,
            pad: read(&key("padding_token_id"), None)?,
            mask: read(&key("mask_token_id"), None)?,
            fim_pre: read(&key("fim_pre_token_id"), None)?,
            fim_suf: read(&key("fim_suf_token_id"), None)?,
            fim_mid: read(&key("fim_mid_token_id"), None)?,
            fim_pad: read(&key("fim_pad_token_id"), None)?,
            fim_rep: read(&key("fim_rep_token_id"), None)?,
            fim_sep: read(&key("fim_sep_token_id"), None)?,
            eog: Vec::new(),
        };
        // Older files name the fill-in-the-middle tokens by these keys.
        for (old, slot) in [
            ("prefix_token_id", &mut s.fim_pre),
            ("suffix_token_id", &mut s.fim_suf),
            ("middle_token_id", &mut s.fim_mid),
        ] {
            if let Some(id) = read(&key(old), None)? {
                *slot = Some(id);
            }
        }

        // Find unnamed ones by text. llama.cpp takes whichever match its hash map
        // yields first; we take the lowest id, which is deterministic (SmolLM2 has
        // both <|endoftext|> = 0 and <|im_end|> = 2, and llama.cpp reports 0).
        for (slot, texts) in [
            (&mut s.eot, EOT_TEXTS),
            (&mut s.eom, EOM_TEXTS),
            (&mut s.fim_pre, FIM_PRE_TEXTS),
            (&mut s.fim_suf, FIM_SUF_TEXTS),
            (&mut s.fim_mid, FIM_MID_TEXTS),
            (&mut s.fim_pad, FIM_PAD_TEXTS),
            (&mut s.fim_rep, FIM_REP_TEXTS),
            (&mut s.fim_sep, FIM_SEP_TEXTS),
        ] {
            if slot.is_none() {
                if let Some(id) = lowest_id(vocab, texts) {
                    *slot = Some(id);
                    make_control(vocab, id);
                }
            }
        }

        // Control tokens whose text says "unused" are reserved slots.
        for id in 0..n as u32 {
            let a = vocab.attrs(id);
            if a.has(Attrs::CONTROL) && vocab.text(id).is_some_and(|t| t.contains("unused")) {
                vocab.add_attrs(id, Attrs::UNUSED);
            }
        }

        let mut eog = BTreeSet::new();
        eog.extend(s.fim_pad);
        eog.extend(s.fim_rep);
        eog.extend(s.fim_sep);
        for text in EOG_TEXTS {
            if let Some(id) = vocab.id(text) {
                eog.insert(id);
                make_control(vocab, id);
            }
        }
        for text in ALWAYS_RENDERED {
            if let Some(id) = vocab.id(text) {
                vocab.set_attrs(id, Attrs::USER_DEFINED);
            }
        }
        eog.extend(s.eos);
        eog.extend(s.eot);
        eog.extend(s.eom);

        // Harmony-style vocabularies (gpt-oss, solar-open) use <|end|> between
        // messages, not at the end of generation.
        let has = |vocab: &Vocab, eog: &BTreeSet<u32>, t: &str| {
            vocab.id(t).is_some_and(|id| eog.contains(&id))
        };
        if (has(vocab, &eog, "<|return|>") && has(vocab, &eog, "<|call|>"))
            || (has(vocab, &eog, "<|calls|>") && has(vocab, &eog, "<|flush|>"))
        {
            if let Some(end) = vocab.id("<|end|>").filter(|id| eog.contains(id)) {
                eog.remove(&end);
                vocab.set_attrs(end, Attrs::USER_DEFINED);
            }
        }
        // Where </s> is an ordinary token (Gemma 4, PLaMo), it does not end generation.
        if has(vocab, &eog, "<|tool_response>") || has(vocab, &eog, "<|plamo:eos|>") {
            if let Some(s_id) = vocab.id("</s>").filter(|id| eog.contains(id)) {
                eog.remove(&s_id);
                vocab.set_attrs(s_id, Attrs::NORMAL);
            }
        }
        s.eog = eog.into_iter().collect();
        Ok(s)
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
}

fn lowest_id(vocab: &Vocab, texts: &[&str]) -> Option<u32> {
    texts.iter().filter_map(|t| vocab.id(t)).min()
}

/// A token recognised as a turn marker is treated as a control token even when the
/// file typed it otherwise (a converter bug llama.cpp also repairs).
fn make_control(vocab: &mut Vocab, id: u32) {
    if !vocab.attrs(id).has(Attrs::CONTROL) {
        vocab.add_attrs(id, Attrs::CONTROL);
    }
}
