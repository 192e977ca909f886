// The matmul of a `linear` node: out[t, c] = x[t, :] · W[r, :] with W in its GGUF
// type, dequantised in registers; optionally x's rows RMS-normalised and multiplied
// by a norm weight first (the prologue), and a residual added after. Weights of one
// type read by one linear lie side by side in one buffer; a buffer split by rows is one
// dispatch per part, each writing its columns `first_row ..` of the output.
//
// The prologue is folded into the dot product: x̂ · w = inv_rms · Σ (x · g) w, and
// each workgroup sums x² over the row it reads anyway, so no pass normalises x first.

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
    // 1: the prologue (RMS norm with epsilon `eps`, times `norm_weight`).
    norm: u32,
    eps: f32,
    // 1: add residual[t, c].
    residual: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> norm_weight: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

fn x_at(t: u32, k: u32) -> f32 {
    let row = select(t, step.tokens - 1u, p.x_last_row == 1u);
    return x[row * p.x_stride + p.x_offset + k];
}

// What multiplies x[k] before the dot product: the norm weight, or 1.
fn x_factor(k: u32) -> f32 {
    if p.norm == 1u {
        return norm_weight[k];
    }
    return 1.0;
}

// 1 / RMS of a row whose squares sum to `sum_sq`, or 1 without the prologue.
fn inv_rms(sum_sq: f32) -> f32 {
    if p.norm == 1u {
        return 1.0 / sqrt(sum_sq / f32(p.cols) + p.eps);
    }
    return 1.0;
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

// Decode (one row of x): a workgroup of 64 computes ROWS_PER_GROUP rows together. Each
// invocation strides along the row 8 weights at a time, reading those 8 values of x
// once for all the rows; one reduction then sums every row (and x²) at once.
override ROWS_PER_GROUP: u32 = 4u;
const MAX_ROWS_PER_GROUP: u32 = 8u;
// Per row and for x²: the 64 invocations' partial sums.
var<workgroup> partial: array<f32, 576>; // (MAX_ROWS_PER_GROUP + 1) × 64

@compute @workgroup_size(64)
fn matmul_decode(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = workgroup_index(wid, nwg) * ROWS_PER_GROUP;
    let parts = p.cols / 8u;
    let stride = row_bytes(p.cols);
    var acc: array<f32, MAX_ROWS_PER_GROUP>;
    var sum_sq = 0.0;
    for (var g = lid; g < parts; g += 64u) {
        var xs: array<f32, 8>;
        for (var k = 0u; k < 8u; k++) {
            let v = x_at(0u, 8u * g + k);
            sum_sq += v * v;
            xs[k] = v * x_factor(8u * g + k);
        }
        for (var i = 0u; i < ROWS_PER_GROUP; i++) {
            if first + i < p.rows {
                let w = row_part((first + i) * stride, g);
                for (var k = 0u; k < 8u; k++) {
                    acc[i] += w[k] * xs[k];
                }
            }
        }
    }
    for (var i = 0u; i < ROWS_PER_GROUP; i++) {
        partial[i * 64u + lid] = acc[i];
    }
    partial[MAX_ROWS_PER_GROUP * 64u + lid] = sum_sq;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if lid < half {
            for (var i = 0u; i <= MAX_ROWS_PER_GROUP; i++) {
                if i < ROWS_PER_GROUP || i == MAX_ROWS_PER_GROUP {
                    partial[i * 64u + lid] += partial[i * 64u + lid + half];
                }
            }
        }
        workgroupBarrier();
    }
    if lid < ROWS_PER_GROUP && first + lid < p.rows {
        let inv = inv_rms(partial[MAX_ROWS_PER_GROUP * 64u]);
        store(0u, first + lid, partial[lid * 64u] * inv);
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
// Per token of the tile: 1 / RMS of its row (the prologue), or 1.
var<workgroup> tile_inv_rms: array<f32, 64>;

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

    // The prologue's row norms: four invocations per token, each over a quarter of
    // the row, combined in x_tile (not yet in use).
    let own_tok = tok0 + lid / 4u;
    var sum_sq = 0.0;
    if p.norm == 1u && own_tok < tokens {
        for (var k = lid % 4u; k < p.cols; k += 4u) {
            let v = x_at(own_tok, k);
            sum_sq += v * v;
        }
    }
    x_tile[lid] = sum_sq;
    workgroupBarrier();
    if lid < TILE {
        let s = x_tile[4u * lid] + x_tile[4u * lid + 1u] + x_tile[4u * lid + 2u] + x_tile[4u * lid + 3u];
        tile_inv_rms[lid] = inv_rms(s);
    }
    workgroupBarrier();

    let my_row = lid % 16u;
    let my_tok = lid / 16u;
    var acc: array<array<f32, 4>, 4>;
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
                v = x_at(tok0 + t, c0 + k) * x_factor(c0 + k);
            }
            x_tile[k * TILE + t] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < CHUNK; k++) {
            var w: array<f32, 4>;
            var xv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                w[i] = w_tile[k * TILE + my_row + 16u * i];
                xv[i] = x_tile[k * TILE + my_tok + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] += w[i] * xv[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var j = 0u; j < 4u; j++) {
        let t = tok0 + my_tok + 16u * j;
        for (var i = 0u; i < 4u; i++) {
            let r = row0 + my_row + 16u * i;
            if r < p.rows && t < tokens {
                store(t, r, acc[i][j] * tile_inv_rms[my_tok + 16u * j]);
            }
        }
    }
}
