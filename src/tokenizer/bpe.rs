//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) on the tokenizers crate: its
//! regex engine (`SysRegex`, Oniguruma) finds the words, and its `BPE` model merges
//! them by rank.
//!
//! The crate's pre-tokenizer pipeline (`Sequence` of `Split`s and `ByteLevel`) gives
//! the same words, but it tracks the original offset of every byte through each
//! step, which we never use and which cost two thirds of the encoding time on 1 MB
//! of text. So the loop that applies each regex to each piece (the crate's
//! `Pattern::find_matches`, kept as "isolated" pieces as `Split` does) and the
//! byte-to-character table of GPT-2 are written out here.

use std::collections::HashSet;

use tokenizers::models::bpe::{Vocab as BpeVocab, BPE};
use tokenizers::pattern::Pattern;
use tokenizers::utils::SysRegex;
use tokenizers::Model;

use super::error::{Result, TokenizerError};
use super::pretok::PreTokenizer;
use super::vocab::Vocab;
use crate::gguf::Metadata;
use crate::synth::byte_level_char;

/// The byte-level BPE model of one vocabulary.
pub(crate) struct ByteLevelBpe {
    regexes: Vec<SysRegex>,
    model: BPE,
    /// GPT-2's printable character for each byte.
    byte_chars: [char; 256],
}

impl std::fmt::Debug for ByteLevelBpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteLevelBpe").finish_non_exhaustive()
    }
}

impl ByteLevelBpe {
    /// Compiles the family's regexes and builds the BPE model from the vocabulary
    /// and `tokenizer.ggml.merges`.
    pub(crate) fn new(meta: &Metadata, vocab: &Vocab, family: &PreTokenizer) -> Result<Self> {
        let regexes = family
            .regexes
            .iter()
            .map(|re| {
                SysRegex::new(re).map_err(|e| {
                    TokenizerError::InvalidVocab(format!("pre-tokenizer regex {re:?}: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe_vocab: BpeVocab = vocab.ids().iter().map(|(t, &id)| (t.clone(), id)).collect();
        let merges = read_merges(meta, vocab)?;
        let model = BPE::builder()
            .vocab_and_merges(bpe_vocab, merges)
            .ignore_merges(family.ignore_merges)
            .build()
            .map_err(|e| TokenizerError::InvalidVocab(format!("BPE model: {e}")))?;
        let mut byte_chars = ['\0'; 256];
        for (b, c) in byte_chars.iter_mut().enumerate() {
            *c = byte_level_char(b as u8);
        }
        Ok(ByteLevelBpe {
            regexes,
            model,
            byte_chars,
        })
    }

    /// Splits `text` into words: each regex in turn cuts every piece so far into
    /// its matches and the text between them.
    fn words(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        let mut pieces = vec![(0, text.len())];
        let mut next = Vec::new();
        for re in &self.regexes {
            next.clear();
            for &(start, end) in &pieces {
                let found = (&re)
                    .find_matches(&text[start..end])
                    .map_err(|e| TokenizerError::Engine(e.to_string()))?;
                next.extend(
                    found
                        .into_iter()
                        .filter(|((a, b), _)| b > a)
                        .map(|((a, b), _)| (start + a, start + b)),
                );
            }
            std::mem::swap(&mut pieces, &mut next);
        }
        Ok(pieces)
    }

    /// Tokenises one fragment of plain text, appending ids to `out`.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let mut word = String::new();
        for (start, end) in self.words(text)? {
            word.clear();
            word.extend(
                text[start..end]
                    .bytes()
                    .map(|b| self.byte_chars[b as usize]),
            );
            // Characters missing from the vocabulary are dropped by the crate (there
            // is no unknown token); llama.cpp drops them too. Every merge result is
            // a token (checked in `read_merges`), so nothing else can be left over.
            let tokens = self
                .model
                .tokenize(&word)
                .map_err(|e| TokenizerError::Engine(e.to_string()))?;
            out.extend(tokens.into_iter().map(|t| t.id));
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
