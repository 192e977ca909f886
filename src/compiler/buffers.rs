//! The activation arena of one schedule: every intermediate gets an offset in one
//! buffer, and two tensors share bytes only if their lifetimes do not overlap.
//!
//! Liveness runs over the schedule: a tensor is live from the step that writes it
//! to the last step that reads it (through views: a view has no bytes of its own
//! and keeps its source alive). The output lives to the end. Offsets come from
//! greedy-by-size interval colouring: largest first, each at the lowest aligned
//! offset that does not collide with an already placed tensor live at the same time.

use serde::{Deserialize, Serialize};

use crate::graph::{DType, Graph, NodeId, Step};

/// A tensor's lifetime (schedule positions, inclusive) and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub first: usize,
    pub last: usize,
    pub bytes: u64,
}

impl Interval {
    fn overlaps(&self, other: &Interval) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Offsets for `intervals` (each aligned to `align`) and the arena size.
pub fn colour(intervals: &[Interval], align: u64) -> (Vec<u64>, u64) {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(intervals[i].bytes), intervals[i].first));
    let mut offsets = vec![0u64; intervals.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0;
    for i in order {
        let me = intervals[i];
        let mut busy: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| intervals[j].overlaps(&me))
            .map(|&j| (offsets[j], offsets[j] + intervals[j].bytes))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + me.bytes <= start {
                break;
            }
            offset = offset.max(end.next_multiple_of(align));
        }
        offsets[i] = offset;
        arena = arena.max(offset + me.bytes);
        placed.push(i);
    }
    (offsets, arena.next_multiple_of(align))
}

/// Where a node's value lives in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Slot {
    /// Its own bytes at `offset`.
    Arena { offset: u64, bytes: u64 },
    /// A view of node `of`'s bytes.
    View { of: usize },
}

/// The arena of one schedule at one step size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArenaPlan {
    /// `T` and `P + T` the sizes were computed for (the largest the plan allows).
    pub tokens: usize,
    pub context: usize,
    pub alignment: u64,
    /// Per node, in schedule order.
    pub slots: Vec<Slot>,
    pub bytes: u64,
    /// Every intermediate in a buffer of its own: what planning saves against.
    pub naive_bytes: u64,
}

impl ArenaPlan {
    /// `@ arena[0x0000..0x0900)` or `view of %3`, for the text dump.
    pub fn describe(&self, id: NodeId) -> String {
        match self.slots[id.index()] {
            Slot::Arena { offset, bytes } => {
                format!("@ arena[{offset:#07x}..{:#07x})", offset + bytes)
            }
            Slot::View { of } => format!("@ view of %{of}"),
        }
    }
}

fn dtype_bytes(d: DType) -> u64 {
    match d {
        DType::F32 | DType::I32 => 4,
        DType::F16 => 2,
    }
}

/// The node whose bytes a node's value is (itself unless it is a view).
fn storage(g: &Graph, id: NodeId) -> NodeId {
    let mut id = id;
    while g.node(id).op.is_view() {
        id = g.inputs(id)[0];
    }
    id
}

/// Plans the arena of `g` at step size `step` (`T` tokens, `P + T` context).
pub fn plan_arena(g: &Graph, step: Step, alignment: u64) -> ArenaPlan {
    let n = g.len();
    let bytes: Vec<u64> = g
        .schedule()
        .map(|id| {
            let ty = &g.node(id).ty;
            ty.elements(step) as u64 * dtype_bytes(ty.dtype)
        })
        .collect();
    let mut last_use: Vec<usize> = (0..n).collect();
    for id in g.schedule() {
        for input in g.inputs(id) {
            let owner = storage(g, input).index();
            last_use[owner] = last_use[owner].max(id.index());
        }
    }
    last_use[storage(g, g.output).index()] = n;
    let owners: Vec<usize> = g
        .schedule()
        .filter(|&id| !g.node(id).op.is_view())
        .map(|id| id.index())
        .collect();
    let intervals: Vec<Interval> = owners
        .iter()
        .map(|&i| Interval {
            first: i,
            last: last_use[i],
            bytes: bytes[i],
        })
        .collect();
    let (offsets, arena) = colour(&intervals, alignment);
    let mut slots: Vec<Slot> = g
        .schedule()
        .map(|id| Slot::View {
            of: storage(g, id).index(),
        })
        .collect();
    for (&i, &offset) in owners.iter().zip(&offsets) {
        slots[i] = Slot::Arena {
            offset,
            bytes: bytes[i],
        };
    }
    ArenaPlan {
        tokens: step.tokens,
        context: step.past + step.tokens,
        alignment,
        slots,
        bytes: arena,
        naive_bytes: intervals.iter().map(|i| i.bytes).sum(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::compiler::passes::testing::llama_layer;

    fn check(intervals: &[Interval], align: u64) {
        let (offsets, arena) = colour(intervals, align);
        for (i, a) in intervals.iter().enumerate() {
            assert_eq!(offsets[i] % align, 0);
            assert!(offsets[i] + a.bytes <= arena, "tensor {i} leaves the arena");
            for (j, b) in intervals.iter().enumerate().skip(i + 1) {
                let disjoint =
                    offsets[i] + a.bytes <= offsets[j] || offsets[j] + b.bytes <= offsets[i];
                assert!(
                    !a.overlaps(b) || disjoint || a.bytes == 0 || b.bytes == 0,
                    "{i} and {j} are live together and share bytes"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn live_tensors_never_share_bytes_and_stay_inside_the_arena(
            raw in prop::collection::vec((0usize..40, 0usize..10, 1u64..5000), 1..60),
            align_pow in 0u32..9,
        ) {
            let intervals: Vec<Interval> = raw
                .iter()
                .map(|&(first, len, bytes)| Interval { first, last: first + len, bytes })
                .collect();
            check(&intervals, 1 << align_pow);
        }
    }

    #[test]
    fn a_chain_reuses_two_buffers() {
        let chain: Vec<Interval> = (0..10)
            .map(|i| Interval {
                first: i,
                last: i + 1,
                bytes: 1000,
            })
            .collect();
        let (_, arena) = colour(&chain, 256);
        assert_eq!(arena, 2 * 1024);
    }

    #[test]
    fn views_share_their_source_and_keep_it_alive() {
        let mut g = crate::compiler::passes::testing::after(llama_layer(), "norm-prologue");
        g = g.compact();
        let plan = plan_arena(&g, Step { past: 7, tokens: 1 }, 4);
        assert!(plan.bytes < plan.naive_bytes);
        for id in g.schedule() {
            if g.node(id).op.is_view() {
                let Slot::View { of } = plan.slots[id.index()] else {
                    panic!("a view has no bytes")
                };
                assert_eq!(g.node(NodeId::new(of)).op.name(), "linear");
            }
        }
    }
}
