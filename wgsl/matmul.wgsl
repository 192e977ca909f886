// The matmul of a `linear` node: out[t, c] = x[t, :] · W[r, :] with W in its GGUF
// type, dequantised in registers, and a residual added as it stores. Weights of one
// type read by one linear lie side by side in one buffer; a buffer split by rows is one
// dispatch per part, each writing its columns `first_row ..` of the output. A linear's
// norm prologue runs before as rms_norm_mul in longer steps; the decode kernel applies
// it itself (`prologue`).

struct Params {
    // Rows of W in this dispatch, and where they go in the output row.
    rows: u32,
    first_row: u32,
    cols: u32,
    // Output row length (the row stride of `out` and `residual`).
    out_len: u32,
    // Rows of x: 0 means T.
    fixed_tokens: u32,
    // x is a view: value k of row t is x[x_row(t) · x_stride + x_offset + k].
    x_offset: u32,
    x_stride: u32,
    // 1: the view is the last row (T − 1) of its source.
    x_last_row: u32,
    // 1: add residual[t, c].
    residual: u32,
    // 1 (decode only): x_vec4 holds the rows before the linear's RMS-norm prologue,
    // which this kernel applies itself: x times `norm_weight4`, the sums times the
    // inverse RMS of x (the prologue's own dispatch then runs only for longer steps).
    prologue: u32,
    eps: f32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// x again, four values a load (views start and stride at multiples of 32 values).
@group(0) @binding(6) var<storage, read> x_vec4: array<vec4<f32>>;
// The weights again, 16 bytes a load (buffers are padded to 16 bytes), for the decode
// dot products whose rows are whole vec4 words.
@group(0) @binding(7) var<storage, read> weights4: array<vec4<u32>>;
// The prologue's norm weight, four values a load.
@group(0) @binding(8) var<storage, read> norm_weight4: array<vec4<f32>>;

fn x_at(t: u32, k: u32) -> f32 {
    let row = select(t, step.tokens - 1u, p.x_last_row == 1u);
    return x[row * p.x_stride + p.x_offset + k];
}

// Writes output value (t, c), the residual added.
fn store(t: u32, c: u32, value: f32) {
    let at = t * p.out_len + p.first_row + c;
    var v = value;
    if p.residual == 1u {
        v += residual[at];
    }
    out[at] = v;
}

// The 32 values of x[0, :] a slice of a weight row multiplies (see `columns32`): four
// runs of 8, a b, c d, e f and g h, the sums of the first two runs and of the last
// two, and (for a folded prologue) the sum of their squares before the norm weight.
// Named vectors, not an array: drivers put dynamically indexed private arrays in slow
// local memory.
struct X32 {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
    e: vec4<f32>,
    f: vec4<f32>,
    g: vec4<f32>,
    h: vec4<f32>,
    low_sum: f32,
    high_sum: f32,
    squares: f32,
}

// Values of x's (one) row in the runs of 8 columns starting at `starts`.
fn x32(starts: vec4<u32>) -> X32 {
    let row = select(0u, step.tokens - 1u, p.x_last_row == 1u);
    let at = (vec4<u32>(row * p.x_stride + p.x_offset) + starts) / 4u;
    var x: X32;
    x.a = x_vec4[at.x];
    x.b = x_vec4[at.x + 1u];
    x.c = x_vec4[at.y];
    x.d = x_vec4[at.y + 1u];
    x.e = x_vec4[at.z];
    x.f = x_vec4[at.z + 1u];
    x.g = x_vec4[at.w];
    x.h = x_vec4[at.w + 1u];
    if p.prologue == 1u {
        x.squares = dot(x.a, x.a) + dot(x.b, x.b) + dot(x.c, x.c) + dot(x.d, x.d) + dot(x.e, x.e)
            + dot(x.f, x.f) + dot(x.g, x.g) + dot(x.h, x.h);
        let w = starts / 4u;
        x.a *= norm_weight4[w.x];
        x.b *= norm_weight4[w.x + 1u];
        x.c *= norm_weight4[w.y];
        x.d *= norm_weight4[w.y + 1u];
        x.e *= norm_weight4[w.z];
        x.f *= norm_weight4[w.z + 1u];
        x.g *= norm_weight4[w.w];
        x.h *= norm_weight4[w.w + 1u];
    }
    x.low_sum = dot(x.a + x.b + x.c + x.d, vec4<f32>(1.0));
    x.high_sum = dot(x.e + x.f + x.g + x.h, vec4<f32>(1.0));
    return x;
}

// Decode (one row of x): a workgroup of 64 computes ROWS_PER_GROUP (4) rows, one per
// lane of a vec4 accumulator. Each invocation strides along the rows a slice of 32
// weights at a time: it loads the 32 values of x the slice multiplies once, then each
// row's `dot32` (the weight type's dot product, straight-line word loads where the
// type has one). One reduction then sums all four rows at once, and the squares of x
// for a folded prologue.
const ROWS_PER_GROUP: u32 = 4u;
var<workgroup> partial: array<vec4<f32>, 64>;
var<workgroup> partial_squares: array<f32, 64>;

@compute @workgroup_size(64)
fn matmul_decode(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = workgroup_index(wid, nwg) * ROWS_PER_GROUP;
    let stride = row_bytes(p.cols);
    let last = min(first + ROWS_PER_GROUP, p.rows);
    var acc = vec4<f32>();
    var squares = 0.0;
    for (var g = lid; g < p.cols / 32u; g += 64u) {
        let x = x32(columns32(g));
        squares += x.squares;
        // Rows past the last repeat it (their sums are never stored): no branches, so
        // all four rows' loads can be in flight together.
        acc.x += dot32(min(first, p.rows - 1u) * stride, g, x);
        acc.y += dot32(min(first + 1u, p.rows - 1u) * stride, g, x);
        acc.z += dot32(min(first + 2u, p.rows - 1u) * stride, g, x);
        acc.w += dot32(min(first + 3u, p.rows - 1u) * stride, g, x);
    }
    partial[lid] = acc;
    partial_squares[lid] = squares;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
            partial_squares[lid] += partial_squares[lid + half];
        }
        workgroupBarrier();
    }
    var scale = 1.0;
    if p.prologue == 1u {
        scale = 1.0 / sqrt(partial_squares[0] / f32(p.cols) + p.eps);
    }
    if first + lid < last {
        store(0u, first + lid, partial[0][lid] * scale);
    }
}

// Prefill (several rows of x): a workgroup of 256 computes a TILE × TILE block of the
// output (weight rows × tokens), each invocation a 4 × 4 register tile of it, from
// CHUNK columns of W (dequantised) and of x staged in workgroup memory at a time.
const TILE: u32 = 64u;
const CHUNK: u32 = 16u;
// Both column-major, [CHUNK][TILE], so an invocation's 4 values of a column are 16 apart.
var<workgroup> w_tile: array<f32, 1024>;
var<workgroup> x_tile: array<f32, 1024>;

@compute @workgroup_size(256)
fn matmul_prefill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tokens = row_count(p.fixed_tokens);
    let row_tiles = (p.rows + TILE - 1u) / TILE;
    let tile = workgroup_index(wid, nwg);
    let row0 = (tile % row_tiles) * TILE;
    let tok0 = (tile / row_tiles) * TILE;
    let stride = row_bytes(p.cols);

    let my_row = lid % 16u;
    let my_tok = lid / 16u;
    // acc_i[j]: weight row my_row + 16 i, token my_tok + 16 j.
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    for (var c0 = 0u; c0 < p.cols; c0 += CHUNK) {
        // TILE rows × CHUNK / 8 parts of W: one part per invocation of the first 128.
        if lid < TILE * CHUNK / 8u {
            let r = lid / 2u;
            let part = lid % 2u;
            var w: array<f32, 8>;
            if row0 + r < p.rows {
                w = row_part((row0 + r) * stride, c0 / 8u + part);
            }
            for (var k = 0u; k < 8u; k++) {
                w_tile[(8u * part + k) * TILE + r] = w[k];
            }
        }
        for (var i = lid; i < TILE * CHUNK; i += 256u) {
            let t = i / CHUNK;
            let k = i % CHUNK;
            var v = 0.0;
            if tok0 + t < tokens {
                v = x_at(tok0 + t, c0 + k);
            }
            x_tile[k * TILE + t] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < CHUNK; k++) {
            let at = k * TILE;
            let w = vec4<f32>(w_tile[at + my_row], w_tile[at + my_row + 16u], w_tile[at + my_row + 32u], w_tile[at + my_row + 48u]);
            let xv = vec4<f32>(x_tile[at + my_tok], x_tile[at + my_tok + 16u], x_tile[at + my_tok + 32u], x_tile[at + my_tok + 48u]);
            acc0 += w.x * xv;
            acc1 += w.y * xv;
            acc2 += w.z * xv;
            acc3 += w.w * xv;
        }
        workgroupBarrier();
    }
    let tile_rows = mat4x4<f32>(acc0, acc1, acc2, acc3);
    for (var j = 0u; j < 4u; j++) {
        let t = tok0 + my_tok + 16u * j;
        for (var i = 0u; i < 4u; i++) {
            let r = row0 + my_row + 16u * i;
            if r < p.rows && t < tokens {
                store(t, r, tile_rows[i][j]);
            }
        }
    }
}
