//! Which epilogues the decode matmul applies as it stores (wgsl/matmul.wgsl's `FOLD`),
//! so that a decode step needs no epilogue dispatch after it: rotations (Llama's Q and
//! K) and the gated activation (act(gate) · up), whose coupled columns one workgroup
//! computes together when its groups of four rows are chosen right (`pair_span`). Steps that
//! couple a whole head (a per-head norm) or that mix with these stay in the epilogue
//! kernel.

use crate::graph::{Epilogue, Rope};
use crate::model::Activation;

use super::lower::rope_mode;

/// Its `FOLD` constants (wgsl/matmul.wgsl).
pub(super) const FOLD_NONE: u32 = 0;
pub(super) const FOLD_ROPE: u32 = 1;
pub(super) const FOLD_GATED: u32 = 2;

/// The decode matmul's fold, its `pair_span` and rope words (in the order of its
/// `Params`), and the inverse frequencies its `rope_table` binding holds.
pub(super) struct DecodeFold {
    pub fold: u32,
    pub words: [u32; 7],
    pub rope_table: Vec<f32>,
}

/// Four rows in a row: no epilogue folded.
pub(super) const PLAIN: DecodeFold = DecodeFold {
    fold: FOLD_NONE,
    words: [2, 0, 0, 0, 0, 0, 0],
    rope_table: Vec::new(),
};

/// How the decode matmul folds `epilogue` into its stores, for a linear of `raw_len`
/// output columns dispatched in `parts` (first row, rows); `None` when it cannot.
pub(super) fn decode_fold(
    epilogue: &[Epilogue],
    raw_len: usize,
    parts: &[(usize, usize)],
) -> Option<DecodeFold> {
    match epilogue {
        [Epilogue::Gated { act }] => gated(*act, raw_len, parts),
        _ => rotations(epilogue, parts),
    }
}

/// Gate and up side by side in one dispatch: rows b, b + 1 of the gate and the same of
/// the up projection, `raw_len / 2` rows further on.
fn gated(act: Activation, raw_len: usize, parts: &[(usize, usize)]) -> Option<DecodeFold> {
    let span = raw_len / 2;
    let one_dispatch = parts == [(0, raw_len)];
    if !one_dispatch || !span.is_multiple_of(2) {
        return None;
    }
    let act = match act {
        Activation::Silu => 0,
        Activation::GeluTanh => 1,
    };
    Some(DecodeFold {
        fold: FOLD_GATED,
        words: [span as u32, 0, 0, 0, 0, act, 0],
        rope_table: Vec::new(),
    })
}

/// Rotations of one kind over consecutive columns (Q's and K's heads). Adjacent pairs
/// lie inside four rows in a row; halves pair rows half a head apart, so a group takes
/// rows b, b + 1, b + d/2, b + d/2 + 1 of a head of d, which every dispatch part
/// must hold whole heads for.
fn rotations(epilogue: &[Epilogue], parts: &[(usize, usize)]) -> Option<DecodeFold> {
    let mut ropes = epilogue.iter().map(|step| match step {
        Epilogue::Rope { cols, rope } => Some((cols, rope)),
        _ => None,
    });
    let (first_cols, rope): (_, &Rope) = ropes.next()??;
    let mut end = first_cols.start + first_cols.len;
    for next in ropes {
        let (cols, other) = next?;
        if other != rope || cols.start != end {
            return None;
        }
        end += cols.len;
    }
    let span = match rope_mode(rope.mode) {
        0 => 2,
        _ => rope.head_dim / 2,
    };
    let whole_blocks = |n: usize| n.is_multiple_of(2 * span);
    let fits = rope.n_rot.is_multiple_of(2)
        && (span == 2 || rope.n_rot == rope.head_dim)
        && span.is_multiple_of(2)
        && whole_blocks(first_cols.start)
        && parts
            .iter()
            .all(|&(first, rows)| whole_blocks(first) && whole_blocks(rows));
    fits.then(|| DecodeFold {
        fold: FOLD_ROPE,
        words: [
            span as u32,
            first_cols.start as u32,
            end as u32,
            rope.head_dim as u32,
            rope.n_rot as u32,
            rope_mode(rope.mode),
            rope.freq_scale.to_bits(),
        ],
        rope_table: rope.inv_freq(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;
    use crate::graph::{Cols, Weight};
    use crate::model::RopeMode;

    fn rope(mode: RopeMode, n_rot: usize, base: f32) -> Rope {
        Rope {
            mode,
            head_dim: 32,
            n_rot,
            base,
            freq_scale: 1.0,
        }
    }

    fn rotation(start: usize, len: usize, rope: Rope) -> Epilogue {
        Epilogue::Rope {
            cols: Cols { start, len },
            rope,
        }
    }

    /// Q (two heads) and K (one head) side by side, V after them.
    fn q_and_k(mode: RopeMode, n_rot: usize) -> Vec<Epilogue> {
        let r = rope(mode, n_rot, 10_000.0);
        vec![rotation(0, 64, r), rotation(64, 32, r)]
    }

    const QKV_PARTS: [(usize, usize); 2] = [(0, 96), (96, 32)];

    #[test]
    fn rotations_of_one_kind_over_whole_heads_fold() {
        let adjacent = decode_fold(&q_and_k(RopeMode::Adjacent, 16), 128, &QKV_PARTS).unwrap();
        assert_eq!(adjacent.fold, FOLD_ROPE);
        assert_eq!(adjacent.words[..3], [2, 0, 96]);
        assert_eq!(adjacent.rope_table.len(), 8);
        let halves = decode_fold(&q_and_k(RopeMode::Halves, 32), 128, &QKV_PARTS).unwrap();
        assert_eq!(halves.words[..3], [16, 0, 96]);
    }

    #[test]
    fn rotations_that_do_not_pair_inside_a_workgroup_stay_in_the_epilogue() {
        // Halves of a partial rotation pair rows that are not a head apart.
        assert!(decode_fold(&q_and_k(RopeMode::Halves, 16), 128, &QKV_PARTS).is_none());
        // A part that does not start on a head.
        assert!(decode_fold(&q_and_k(RopeMode::Halves, 32), 128, &[(0, 48), (48, 80)]).is_none());
        // Rotations of two kinds, or with a gap between them.
        let (a, b) = (
            rope(RopeMode::Adjacent, 32, 10_000.0),
            rope(RopeMode::Adjacent, 32, 1e6),
        );
        let mixed = [rotation(0, 64, a), rotation(64, 32, b)];
        assert!(decode_fold(&mixed, 128, &QKV_PARTS).is_none());
        let gap = [rotation(0, 32, a), rotation(64, 32, a)];
        assert!(decode_fold(&gap, 128, &QKV_PARTS).is_none());
        // A per-head norm before the rotation couples a whole head.
        let norm = Epilogue::Norm {
            cols: Cols { start: 0, len: 64 },
            eps: 1e-6,
            group: 32,
            weight: Weight {
                name: "q_norm".into(),
                ty: GgmlType::F32,
                rows: 1,
                cols: 32,
            },
        };
        let normed = [norm, rotation(0, 64, a)];
        assert!(decode_fold(&normed, 128, &QKV_PARTS).is_none());
    }

    #[test]
    fn the_gated_activation_folds_only_with_gate_and_up_in_one_dispatch() {
        let silu = [Epilogue::Gated {
            act: Activation::Silu,
        }];
        let one = decode_fold(&silu, 192, &[(0, 192)]).unwrap();
        assert_eq!(one.fold, FOLD_GATED);
        assert_eq!(one.words[0], 96);
        assert!(decode_fold(&silu, 192, &[(0, 96), (96, 96)]).is_none());
        // An odd number of gate rows leaves a workgroup's pair straddling gate and up.
        assert!(decode_fold(&silu, 190, &[(0, 190)]).is_none());
        let with_residual = [silu[0].clone(), Epilogue::Residual];
        assert!(decode_fold(&with_residual, 192, &[(0, 192)]).is_none());
    }
}
