//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) on the tokenizers crate: its
//! `Split` pre-tokenisers run the family's regexes, its `ByteLevel` maps bytes to
//! GPT-2's printable characters, and its `BPE` model merges by rank.

use std::collections::HashSet;

use tokenizers::models::bpe::{Vocab as BpeVocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    Model, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _,
    PreTokenizerWrapper, SplitDelimiterBehavior,
};

use super::error::{Result, TokenizerError};
use super::pretok::PreTokenizer;
use super::vocab::Vocab;
use crate::gguf::Metadata;

/// The byte-level BPE model of one vocabulary.
pub(crate) struct ByteLevelBpe {
    pre: Sequence,
    model: BPE,
}

impl std::fmt::Debug for ByteLevelBpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteLevelBpe").finish_non_exhaustive()
    }
}

impl ByteLevelBpe {
    /// Builds the pre-tokeniser for `family` and the BPE model from the vocabulary
    /// and `tokenizer.ggml.merges`.
    pub(crate) fn new(meta: &Metadata, vocab: &Vocab, family: &PreTokenizer) -> Result<Self> {
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for re in family.regexes {
            let split = Split::new(
                SplitPattern::Regex((*re).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| {
                TokenizerError::InvalidVocab(format!("pre-tokenizer regex {re:?}: {e}"))
            })?;
            steps.push(split.into());
        }
        // The regexes above already split words; the byte-level step only maps bytes
        // to characters (no prefix space, no regex of its own).
        steps.push(ByteLevel::new(false, true, false).into());
        let pre = Sequence::new(steps);

        let bpe_vocab: BpeVocab = vocab.ids().iter().map(|(t, &id)| (t.clone(), id)).collect();
        let merges = read_merges(meta, vocab)?;
        let model = BPE::builder()
            .vocab_and_merges(bpe_vocab, merges)
            .ignore_merges(family.ignore_merges)
            .build()
            .map_err(|e| TokenizerError::InvalidVocab(format!("BPE model: {e}")))?;
        Ok(ByteLevelBpe { pre, model })
    }

    /// Tokenises one fragment of plain text, appending ids to `out`.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let engine = |e: tokenizers::Error| TokenizerError::Engine(e.to_string());
        let mut pretok = PreTokenizedString::from(text);
        self.pre.pre_tokenize(&mut pretok).map_err(engine)?;
        for (word, _, _) in pretok.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            for token in self.model.tokenize(word).map_err(engine)? {
                out.push(token.id);
            }
            // Characters missing from the vocabulary are dropped by the crate (there
            // is no unknown token); llama.cpp drops them too. Every merge result is
            // a token (checked in `read_merges`), so nothing else can be left over.
        }
        Ok(())
    }
}

/// Reads `tokenizer.ggml.merges` ("left right" per entry, in rank order). A pair
/// listed twice keeps its first rank, as in llama.cpp. Entries the crate cannot
/// represent — no space, or a side or result that is not a token — are dropped with
/// a warning: no word can reach them through vocabulary pieces anyway except in a
/// malformed file.
fn read_merges(meta: &Metadata, vocab: &Vocab) -> Result<Vec<(String, String)>> {
    let raw = meta.get_str_array("tokenizer.ggml.merges")?;
    let mut seen = HashSet::with_capacity(raw.len());
    let mut merges = Vec::with_capacity(raw.len());
    let mut dropped = 0usize;
    for entry in raw {
        // The separator is the first space after the first character: a merge's
        // left side may itself be a space in a vocabulary without byte mapping.
        let first_len = entry.chars().next().map_or(0, char::len_utf8);
        let Some(pos) = entry[first_len..].find(' ').map(|p| p + first_len) else {
            dropped += 1;
            continue;
        };
        let (left, right) = (&entry[..pos], &entry[pos + 1..]);
        let joined = format!("{left}{right}");
        if vocab.id(left).is_none() || vocab.id(right).is_none() || vocab.id(&joined).is_none() {
            dropped += 1;
            continue;
        }
        if seen.insert((left.to_string(), right.to_string())) {
            merges.push((left.to_string(), right.to_string()));
        }
    }
    if dropped > 0 {
        eprintln!(
            "rustorch: warning: ignored {dropped} of {} BPE merges whose pieces are not tokens",
            raw.len()
        );
    }
    Ok(merges)
}
