// The index of the largest value of the last row of `[rows, n]` logits (the first
// such index on ties), so greedy decoding reads back 4 bytes.
// One workgroup of 256.

struct Params {
    n: u32,
    // Rows of the logits: 0 means T.
    fixed_rows: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> best: array<u32>;

const WIDTH: u32 = 256u;
var<workgroup> best_value: array<f32, WIDTH>;
var<workgroup> best_index: array<u32, WIDTH>;

// Whether candidate (v, i) beats (w, j): larger, or equal and earlier.
fn beats(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

@compute @workgroup_size(256)
fn argmax(@builtin(local_invocation_index) lid: u32) {
    let start = (row_count(p.fixed_rows) - 1u) * p.n;
    // Invocations past the end start from the last value, which ties lose.
    var v = logits[start + min(lid, p.n - 1u)];
    var i = min(lid, p.n - 1u);
    for (var j = lid + WIDTH; j < p.n; j += WIDTH) {
        let w = logits[start + j];
        if w > v {
            v = w;
            i = j;
        }
    }
    best_value[lid] = v;
    best_index[lid] = i;
    workgroupBarrier();
    for (var stride = WIDTH / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            let w = best_value[lid + stride];
            let j = best_index[lid + stride];
            if beats(w, j, best_value[lid], best_index[lid]) {
                best_value[lid] = w;
                best_index[lid] = j;
            }
        }
        workgroupBarrier();
    }
    if lid == 0u {
        best[0] = best_index[0];
    }
}
