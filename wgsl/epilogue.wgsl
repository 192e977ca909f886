// The epilogue steps of a `linear` node (graph::Epilogue), in order, on its output
// rows in place. Steps that couple columns — a norm over a head, a rotation pairing two
// columns of a head, act(gate) · up — need columns that the matmul's workgroups compute
// apart; hence this second dispatch. A workgroup of 64 takes `chunk` columns of one
// row: whole heads, so that every coupling stays inside it (for GATED, `chunk` output
// columns and the two raw columns each reads). Each step's semantics are the canonical
// op's it names (runtime::cpu::kernels).

struct EpilogueStep {
    kind: u32,
    // Columns start .. start + len of the row.
    start: u32,
    len: u32,
    // Per kind (see the constants).
    a: u32,
    b: u32,
    c: u32,
    d: u32,
    e: u32,
}

// a: group, b: eps (f32 bits), c: offset of the norm weight in `vectors`.
const NORM: u32 = 0u;
// a: head_dim, b: n_rot, c: mode (0 adjacent, 1 halves), d: offset of the inverse
// frequencies (rotary.wgsl) in `vectors`, e: freq_scale (f32 bits).
const ROPE: u32 = 1u;
// a: factor (f32 bits).
const SCALE: u32 = 2u;
// a: 0 silu, 1 gelu_tanh. The row keeps its first half: act(first half) · second half.
const GATED: u32 = 3u;
// Adds residual[t, :] over the row as it now is.
const RESIDUAL: u32 = 4u;

const MAX_STEPS: u32 = 6u;

struct Params {
    // Row stride of `rows` (the matmul's output row).
    row_len: u32,
    // Rows: 0 means T.
    fixed_rows: u32,
    n_steps: u32,
    // Columns per workgroup, and workgroups per row.
    chunk: u32,
    chunks: u32,
    reserved0: u32,
    reserved1: u32,
    reserved2: u32,
    steps: array<EpilogueStep, MAX_STEPS>,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> vectors: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> rows: array<f32>;

@compute @workgroup_size(64)
fn epilogue(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let unit = workgroup_index(wid, nwg);
    let t = unit / p.chunks;
    if t >= row_count(p.fixed_rows) {
        return;
    }
    let row = t * p.row_len;
    // This workgroup's columns c0 .. c0 + chunk of the row as the steps so far left
    // it, and that row's length (GATED halves it).
    let c0 = (unit % p.chunks) * p.chunk;
    var len = p.row_len;
    for (var s = 0u; s < p.n_steps; s++) {
        let st = p.steps[s];
        // The part of the step's columns in this chunk (whole heads and groups).
        let first = max(st.start, c0);
        let end = min(st.start + st.len, c0 + p.chunk);
        switch st.kind {
            case NORM: {
                let eps = bitcast<f32>(st.b);
                for (var g0 = first; g0 < end; g0 += st.a) {
                    var sum_sq = 0.0;
                    for (var i = lid; i < st.a; i += REDUCE_WIDTH) {
                        let v = rows[row + g0 + i];
                        sum_sq += v * v;
                    }
                    let inv = 1.0 / sqrt(workgroup_sum(sum_sq, lid) / f32(st.a) + eps);
                    for (var i = lid; i < st.a; i += REDUCE_WIDTH) {
                        rows[row + g0 + i] = rows[row + g0 + i] * inv * vectors[st.c + i];
                    }
                }
            }
            case ROPE: {
                let half = st.b / 2u;
                let pos = f32(step.past + t) * bitcast<f32>(st.e);
                let heads_here = (max(end, first) - first) / st.a;
                for (var q = lid; q < heads_here * half; q += REDUCE_WIDTH) {
                    let i = q % half;
                    let head = row + first + (q / half) * st.a;
                    let a = head + select(i, 2u * i, st.c == 0u);
                    let b = a + select(half, 1u, st.c == 0u);
                    let turned = turn(rows[a], rows[b], pos * vectors[st.d + i]);
                    rows[a] = turned.x;
                    rows[b] = turned.y;
                }
            }
            case SCALE: {
                let factor = bitcast<f32>(st.a);
                for (var i = first + lid; i < end; i += REDUCE_WIDTH) {
                    rows[row + i] = rows[row + i] * factor;
                }
            }
            case GATED: {
                len = len / 2u;
                for (var i = c0 + lid; i < min(c0 + p.chunk, len); i += REDUCE_WIDTH) {
                    let gate = rows[row + i];
                    let act = select(silu_of(gate), gelu_tanh_of(gate), st.a == 1u);
                    rows[row + i] = act * rows[row + len + i];
                }
            }
            default: {
                for (var i = c0 + lid; i < min(c0 + p.chunk, len); i += REDUCE_WIDTH) {
                    rows[row + i] = rows[row + i] + residual[t * len + i];
                }
            }
        }
        // The next step may read what other invocations wrote.
        storageBarrier();
    }
}
