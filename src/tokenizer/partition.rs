//! Splitting input text around special-token texts, before any model sees it.
//!
//! llama.cpp's rule (`tokenizer_st_partition` in `src/llama-vocab.cpp`): special
//! tokens are tried one at a time, longest text first; each claims its leftmost
//! non-overlapping occurrences in the text not yet claimed by a longer one. Control
//! and unknown tokens take part only when `parse_special` is on; user-defined
//! tokens always do.
//!
//! Hand-written because the tokenizers crate's added-vocabulary matcher picks the
//! leftmost-longest match at each position, which differs from longest-token-first
//! when a shorter special text starts before an overlapping longer one. Doing
//! llama.cpp's loop literally (one scan of the text per special token) would cost
//! 6 000 scans of the input for Gemma's vocabulary; instead one Aho-Corasick pass
//! finds every occurrence of every special text, and the claims are then made in
//! priority order against an interval map, which gives the same result.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, MatchKind};

use super::error::{Result, TokenizerError};
use super::vocab::Vocab;

/// A piece of the input: plain text for the model, or a special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment<'a> {
    /// Text between special tokens (never empty).
    Text(&'a str),
    /// A special token matched in the input.
    Token(u32),
}

/// The special-token matcher of one vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct SpecialMatcher {
    /// Pattern index → (token id, priority rank, takes part without parse_special).
    patterns: Vec<Pattern>,
    automaton: Option<AhoCorasick>,
}

#[derive(Debug, Clone, Copy)]
struct Pattern {
    id: u32,
    rank: u32,
    always: bool,
}

impl SpecialMatcher {
    /// Builds the matcher over every control, user-defined and unknown token.
    pub(crate) fn new(vocab: &Vocab) -> Result<SpecialMatcher> {
        let mut ids: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&id| vocab.attrs(id).is_special_text())
            .collect();
        let len = |id: u32| vocab.text(id).map_or(0, str::len);
        // Longest first; ties (which only matter for overlapping texts of equal
        // length) by id.
        ids.sort_by(|&a, &b| len(b).cmp(&len(a)).then(a.cmp(&b)));
        let mut patterns = Vec::with_capacity(ids.len());
        let mut texts = Vec::with_capacity(ids.len());
        for (rank, &id) in ids.iter().enumerate() {
            let text = vocab.text(id).unwrap_or_default();
            patterns.push(Pattern {
                id,
                rank: rank as u32,
                always: !vocab.attrs(id).is_hidden(),
            });
            texts.push(text);
        }
        let automaton = if texts.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&texts)
                    .map_err(|e| {
                        TokenizerError::InvalidVocab(format!(
                            "cannot index the special tokens: {e}"
                        ))
                    })?,
            )
        };
        Ok(SpecialMatcher {
            patterns,
            automaton,
        })
    }

    /// Splits `text` into plain-text fragments and special tokens.
    pub(crate) fn split<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut out = Vec::new();
        if text.is_empty() {
            return out;
        }
        let Some(automaton) = &self.automaton else {
            out.push(Fragment::Text(text));
            return out;
        };
        // Every occurrence of every eligible special text: (rank, start, end, id).
        let mut found: Vec<(u32, usize, usize, u32)> = automaton
            .find_overlapping_iter(text)
            .filter_map(|m| {
                let p = self.patterns[m.pattern().as_usize()];
                (parse_special || p.always).then_some((p.rank, m.start(), m.end(), p.id))
            })
            .collect();
        if found.is_empty() {
            out.push(Fragment::Text(text));
            return out;
        }
        found.sort_unstable();
        // Claimed spans, start → (end, id); kept disjoint.
        let mut claimed: BTreeMap<usize, (usize, u32)> = BTreeMap::new();
        for (_, start, end, id) in found {
            let overlaps_left = claimed
                .range(..end)
                .next_back()
                .is_some_and(|(_, &(e, _))| e > start);
            if !overlaps_left {
                claimed.insert(start, (end, id));
            }
        }
        let mut pos = 0;
        for (start, (end, id)) in claimed {
            if start > pos {
                out.push(Fragment::Text(&text[pos..start]));
            }
            out.push(Fragment::Token(id));
            pos = end;
        }
        if pos < text.len() {
            out.push(Fragment::Text(&text[pos..]));
        }
        out
    }
}
