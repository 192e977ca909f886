//! The KV-cache plan: one region per cache, laid out back to back. A cache read
//! by a fused attention keeps only what its window can see — a ring of `window`
//! positions for sliding-window layers — and the full context for global layers.
//! Storage is f16 unless asked otherwise.

use serde::{Deserialize, Serialize};

use crate::graph::{DType, Graph};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvRegion {
    pub name: String,
    /// Positions stored: the context, or the window of a ring.
    pub positions: usize,
    pub row_len: usize,
    pub ring: bool,
    pub offset: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvPlan {
    pub context: usize,
    pub dtype: DType,
    pub regions: Vec<KvRegion>,
    pub bytes: u64,
    /// Every cache holding the full context, at the same dtype.
    pub naive_bytes: u64,
}

fn element_bytes(dtype: DType) -> u64 {
    match dtype {
        DType::F16 => 2,
        DType::F32 | DType::I32 => 4,
    }
}

/// Plans the caches of `g` for a context of `context` positions.
pub fn plan_kv(g: &Graph, context: usize, dtype: DType, alignment: u64) -> KvPlan {
    let size = element_bytes(dtype);
    let mut offset = 0;
    let mut naive_bytes = 0;
    let regions = g
        .caches
        .iter()
        .map(|c| {
            let positions = c.positions(context);
            let bytes = (positions * c.row_len) as u64 * size;
            naive_bytes += (context * c.row_len) as u64 * size;
            let region = KvRegion {
                name: c.name.clone(),
                positions,
                row_len: c.row_len,
                ring: positions < context,
                offset,
                bytes,
            };
            offset = (offset + bytes).next_multiple_of(alignment);
            region
        })
        .collect();
    KvPlan {
        context,
        dtype,
        regions,
        bytes: offset,
        naive_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::CacheDecl;

    #[test]
    fn sliding_window_caches_are_rings_and_global_ones_full() {
        let mut g = Graph::default();
        for (layer, window) in [(0, Some(512)), (1, None)] {
            g.caches.push(CacheDecl {
                name: format!("blk.{layer}.cache_k"),
                layer,
                row_len: 256,
                window,
                rotary: None,
                ring: true,
            });
        }
        let plan = plan_kv(&g, 8192, DType::F16, 256);
        assert_eq!(plan.regions[0].positions, 512);
        assert!(plan.regions[0].ring);
        assert_eq!(plan.regions[1].positions, 8192);
        assert_eq!(plan.regions[1].offset, 512 * 256 * 2);
        assert_eq!(plan.bytes, (512 + 8192) * 256 * 2);
        assert_eq!(plan.naive_bytes, 2 * 8192 * 256 * 2);
        // A context shorter than the window needs no ring.
        assert!(!plan_kv(&g, 100, DType::F16, 256).regions[0].ring);
    }
}
