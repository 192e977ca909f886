//! The KV cache: the state behind every `CacheWrite` node, f16 by default.

use half::f16;

use crate::graph::Graph;

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

    /// Moves positions `from .. from + n` down to `to ..` in every cache (context shift).
    pub fn move_positions(&mut self, from: usize, to: usize, n: usize) {
        for (store, &len) in self.stores.iter_mut().zip(&self.row_lens) {
            let range = from * len..(from + n) * len;
            match store {
                Store::F16(s) => s.copy_within(range, to * len),
                Store::F32(s) => s.copy_within(range, to * len),
            }
        }
    }
}
