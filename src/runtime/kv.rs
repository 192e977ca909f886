//! The KV cache: the state behind every `CacheWrite` node, f16 by default.

use half::f16;

use super::cpu::kernels;
use crate::graph::{Graph, Rope};

/// Storage type of cached keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    #[default]
    F16,
    F32,
}

#[derive(Debug, Clone)]
enum Store {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// One store per cache of the graph, each `capacity` positions long.
#[derive(Debug, Clone)]
pub struct KvCache {
    capacity: usize,
    row_lens: Vec<usize>,
    rotary: Vec<Option<Rope>>,
    stores: Vec<Store>,
}

impl KvCache {
    pub fn new(graph: &Graph, capacity: usize, ty: KvType) -> KvCache {
        let row_lens: Vec<usize> = graph.caches.iter().map(|c| c.row_len).collect();
        let stores = row_lens
            .iter()
            .map(|&len| match ty {
                KvType::F16 => Store::F16(vec![f16::ZERO; len * capacity]),
                KvType::F32 => Store::F32(vec![0.0; len * capacity]),
            })
            .collect();
        KvCache {
            capacity,
            row_lens,
            rotary: graph.caches.iter().map(|c| c.rotary).collect(),
            stores,
        }
    }

    /// Positions each cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stores `rows` (whole rows) at positions `first_pos ..` of cache `cache`.
    pub fn write(&mut self, cache: usize, first_pos: usize, rows: &[f32]) {
        let start = first_pos * self.row_lens[cache];
        match &mut self.stores[cache] {
            Store::F16(s) => s[start..start + rows.len()]
                .iter_mut()
                .zip(rows)
                .for_each(|(d, v)| *d = f16::from_f32(*v)),
            Store::F32(s) => s[start..start + rows.len()].copy_from_slice(rows),
        }
    }

    /// The first `n_pos` positions of cache `cache`, as f32.
    pub fn read(&self, cache: usize, n_pos: usize) -> Vec<f32> {
        let len = n_pos * self.row_lens[cache];
        match &self.stores[cache] {
            Store::F16(s) => s[..len].iter().map(|v| v.to_f32()).collect(),
            Store::F32(s) => s[..len].to_vec(),
        }
    }

    /// Forgets positions `keep .. keep + n` of the first `past`: later positions move
    /// down by `n`, and rows stored rotated (keys) are turned back by `n` positions.
    pub fn discard(&mut self, keep: usize, n: usize, past: usize) {
        let moved = past - keep - n;
        for cache in 0..self.stores.len() {
            let len = self.row_lens[cache];
            let range = (keep + n) * len..past * len;
            match &mut self.stores[cache] {
                Store::F16(s) => s.copy_within(range, keep * len),
                Store::F32(s) => s.copy_within(range, keep * len),
            }
            if let Some(rope) = self.rotary[cache] {
                let mut rows = self.read(cache, keep + moved);
                // Each row turns by the same −n (one call per row: rope() advances
                // the position from row to row).
                for row in rows[keep * len..].chunks_exact_mut(len) {
                    kernels::rope(row, len, -(n as i64), &rope);
                }
                self.write(cache, keep, &rows[keep * len..]);
            }
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
}
