//! The KV cache: the state behind every `CacheWrite` and `Attention` node, f16 by
//! default. A cache the graph marks as a ring (`CacheDecl::ring`, a sliding-window
//! layer under the fused attention) keeps only its window: position `p` lives in
//! slot `p mod window`. Every other cache holds the whole context.

use half::f16;

use super::cpu::kernels;
use crate::graph::{Graph, Rope};

/// Storage type of cached keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum KvType {
    #[default]
    F16,
    F32,
}

impl KvType {
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
        }
    }

    /// Bytes of one cached value.
    pub fn bytes(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
enum Store {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// One store per cache of the graph.
#[derive(Debug, Clone)]
pub struct KvCache {
    capacity: usize,
    row_lens: Vec<usize>,
    /// Positions each store holds: `capacity`, or the window of a ring.
    slots: Vec<usize>,
    rotary: Vec<Option<Rope>>,
    stores: Vec<Store>,
}

impl KvCache {
    /// Caches for `capacity` positions, each as large as the graph needs (see `CacheDecl::positions`).
    pub fn new(graph: &Graph, capacity: usize, ty: KvType) -> KvCache {
        let row_lens: Vec<usize> = graph.caches.iter().map(|c| c.row_len).collect();
        let slots: Vec<usize> = graph.caches.iter().map(|c| c.positions(capacity)).collect();
        let stores = row_lens
            .iter()
            .zip(&slots)
            .map(|(&len, &slots)| match ty {
                KvType::F16 => Store::F16(vec![f16::ZERO; len * slots]),
                KvType::F32 => Store::F32(vec![0.0; len * slots]),
            })
            .collect();
        KvCache {
            capacity,
            row_lens,
            slots,
            rotary: graph.caches.iter().map(|c| c.rotary).collect(),
            stores,
        }
    }

    /// Positions a session can reach.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Values stored in all caches (what the KV plan sizes).
    pub fn stored_values(&self) -> usize {
        self.row_lens
            .iter()
            .zip(&self.slots)
            .map(|(l, s)| l * s)
            .sum()
    }

    /// Stores `rows` (whole rows) at positions `first_pos ..` of cache `cache`.
    /// In a ring, a later row may overwrite an earlier one of the same call.
    pub fn write(&mut self, cache: usize, first_pos: usize, rows: &[f32]) {
        let (len, slots) = (self.row_lens[cache], self.slots[cache]);
        for (i, row) in rows.chunks_exact(len).enumerate() {
            let start = (first_pos + i) % slots * len;
            match &mut self.stores[cache] {
                Store::F16(s) => s[start..start + len]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(d, v)| *d = f16::from_f32(*v)),
                Store::F32(s) => s[start..start + len].copy_from_slice(row),
            }
        }
    }

    /// The first `n_pos` positions of cache `cache`, as f32.
    pub fn read(&self, cache: usize, n_pos: usize) -> Vec<f32> {
        self.read_range(cache, 0, n_pos)
    }

    /// Positions `from .. to` of cache `cache`, as f32; a ring must still hold them
    /// (`to - from` at most its window).
    pub fn read_range(&self, cache: usize, from: usize, to: usize) -> Vec<f32> {
        let (len, slots) = (self.row_lens[cache], self.slots[cache]);
        debug_assert!(to - from <= slots, "a ring holds {slots} positions");
        let mut out = Vec::with_capacity((to - from) * len);
        for pos in from..to {
            let start = pos % slots * len;
            match &self.stores[cache] {
                Store::F16(s) => out.extend(s[start..start + len].iter().map(|v| v.to_f32())),
                Store::F32(s) => out.extend_from_slice(&s[start..start + len]),
            }
        }
        out
    }

    /// `rows` as the cache would give them back: rounded to its storage type.
    pub fn as_stored(&self, cache: usize, rows: &[f32]) -> Vec<f32> {
        match &self.stores[cache] {
            Store::F16(_) => rows.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
            Store::F32(_) => rows.to_vec(),
        }
    }

    /// Forgets positions `keep .. keep + n` of the first `past`: later positions move
    /// down by `n`, and rows stored rotated (keys) are turned back by `n` positions.
    /// A ring keeps what it still holds: positions it had already overwritten stay lost.
    pub fn discard(&mut self, keep: usize, n: usize, past: usize) {
        let new_past = past - n;
        for cache in 0..self.stores.len() {
            let (len, slots) = (self.row_lens[cache], self.slots[cache]);
            // Positions `first .. new_past` take the rows `n` later (a ring still
            // holds them: they are within its last `slots` positions).
            let first = keep.max(new_past.saturating_sub(slots)).min(new_past);
            let mut moved = self.read_range(cache, first + n, past);
            if let Some(rope) = self.rotary[cache] {
                // Each row turns by the same −n (one call per row: rope() advances
                // the position from row to row).
                for row in moved.chunks_exact_mut(len) {
                    kernels::rope(row, len, -(n as i64), &rope);
                }
            }
            self.write(cache, first, &moved);
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::CacheDecl;
    use crate::model::RopeMode;

    fn rotated(rows: &[f32], len: usize, first_pos: i64, rope: &Rope) -> Vec<f32> {
        let mut out = rows.to_vec();
        kernels::rope(&mut out, len, first_pos, rope);
        out
    }

    #[test]
    fn discarding_moves_rows_and_re_rotates_keys() {
        let rope = Rope {
            mode: RopeMode::Adjacent,
            head_dim: 4,
            n_rot: 4,
            base: 10_000.0,
            freq_scale: 1.0,
        };
        let mut graph = Graph::default();
        for (name, rotary) in [("k", Some(rope)), ("v", None)] {
            graph.caches.push(CacheDecl {
                name: name.into(),
                layer: 0,
                row_len: 8,
                window: None,
                rotary,
                ring: false,
            });
        }
        let mut kv = KvCache::new(&graph, 16, KvType::F32);
        let content: Vec<f32> = (0..10 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        kv.write(0, 0, &rotated(&content, 8, 0, &rope));
        kv.write(1, 0, &content);

        // Keep position 0, forget 1..5, move 5..10 to 1..6.
        kv.discard(1, 4, 10);
        let kept: Vec<f32> = [&content[..8], &content[5 * 8..]].concat();
        let keys = kv.read(0, 6);
        let expected = rotated(&kept, 8, 0, &rope);
        for (a, b) in keys.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(kv.read(1, 6), kept);
    }

    #[test]
    fn a_ring_keeps_its_window_and_discards_like_a_full_cache() {
        let decl = |ring| CacheDecl {
            name: "v".into(),
            layer: 0,
            row_len: 2,
            window: Some(4),
            rotary: None,
            ring,
        };
        let (mut ring, mut full) = (Graph::default(), Graph::default());
        ring.caches.push(decl(true));
        full.caches.push(decl(false));
        let mut ring = KvCache::new(&ring, 32, KvType::F32);
        let mut full = KvCache::new(&full, 32, KvType::F32);
        assert_eq!((ring.stored_values(), full.stored_values()), (8, 64));
        let rows: Vec<f32> = (0..2 * 20).map(|i| i as f32).collect();
        for kv in [&mut ring, &mut full] {
            kv.write(0, 0, &rows[..2 * 13]);
            kv.write(0, 13, &rows[2 * 13..]);
        }
        assert_eq!(ring.read_range(0, 16, 20), full.read_range(0, 16, 20));
        // Forget 10..15 of 20: the window of the new end (positions 11..15) agrees.
        ring.discard(10, 5, 20);
        full.discard(10, 5, 20);
        assert_eq!(ring.read_range(0, 11, 15), full.read_range(0, 11, 15));
    }
}
