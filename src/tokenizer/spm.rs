//! SentencePiece tokenisation as llama.cpp does it for `tokenizer.ggml.model = llama`
//! (`llm_tokenizer_spm` in `src/llama-vocab.cpp`): start from single characters,
//! repeatedly merge the adjacent pair whose concatenation is the highest-scoring
//! vocabulary entry (leftmost on ties), and spell whatever is left that is not a
//! token as `<0xNN>` byte tokens.
//!
//! Hand-written because the tokenizers crate has no model for this: its `Unigram`
//! picks the best segmentation by Viterbi (different ids on real text), and its `BPE`
//! merges by an explicit rank list rather than by the score of the merged piece.
//! The queue holds at most one entry per merge and each merge is a hash lookup of a
//! slice of the input (merged pieces are always contiguous), so a 1 MB word costs
//! O(n log n), not O(n²).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;

/// A run of the input: bytes `start..start + len`, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of symbol `left` with its right neighbour.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged piece; a candidate whose symbols have changed
    /// since it was queued no longer has this length and is dropped.
    len: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// The SentencePiece model over a vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct Spm {
    /// Token for each byte value (`<0xNN>`, or the byte itself as a one-byte token).
    byte_tokens: [Option<u32>; 256],
    unk: Option<u32>,
}

impl Spm {
    pub(crate) fn new(vocab: &Vocab, unk: Option<u32>) -> Spm {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.id(&format!("<0x{b:02X}>")).or_else(|| {
                // Some vocabularies spell an ASCII byte as itself.
                char::from_u32(b as u32)
                    .filter(|_| b < 0x80)
                    .and_then(|c| vocab.id(c.encode_utf8(&mut [0; 4])))
            });
        }
        Spm { byte_tokens, unk }
    }

    /// Tokenises `text` (whose spaces the caller has already replaced by `▁`),
    /// appending the ids to `out`.
    pub(crate) fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (start, ch)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: ch.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        if symbols.is_empty() {
            return;
        }

        let mut queue = BinaryHeap::new();
        let push = |queue: &mut BinaryHeap<Candidate>, symbols: &[Symbol], left: usize| {
            let Some(right) = symbols[left].next else {
                return;
            };
            let (l, r) = (symbols[left], symbols[right]);
            let piece = &text[l.start..r.start + r.len];
            if let Some(id) = vocab.id(piece) {
                queue.push(Candidate {
                    score: vocab.score(id),
                    left,
                    right,
                    len: piece.len(),
                });
            }
        };
        for left in 0..symbols.len() - 1 {
            push(&mut queue, &symbols, left);
        }

        while let Some(c) = queue.pop() {
            let (l, r) = (symbols[c.left], symbols[c.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != c.len {
                continue; // one side has merged since this candidate was queued
            }
            symbols[c.left].len += r.len;
            symbols[c.right].len = 0;
            symbols[c.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(c.left);
            }
            if let Some(p) = symbols[c.left].prev {
                push(&mut queue, &symbols, p);
            }
            push(&mut queue, &symbols, c.left);
        }

        let mut at = Some(0);
        while let Some(i) = at {
            let s = symbols[i];
            let piece = &text[s.start..s.start + s.len];
            // A merged symbol is always a vocabulary entry; only single characters
            // can be missing, and those are spelled byte by byte.
            match vocab.id(piece) {
                Some(id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.byte_tokens[b as usize].or(self.unk) {
                            out.push(id);
                        }
                    }
                }
            }
            at = s.next;
        }
    }
}
