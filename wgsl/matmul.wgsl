// out[t, r] = x[t, :] · W[r, :] with W in its GGUF type, dequantised in registers.
// A weight split by rows over several buffers is one dispatch per part, each writing
// its columns `first_row ..` of the output.

struct Params {
    // Rows of W in this part, and where they go in the output row.
    rows: u32,
    first_row: u32,
    cols: u32,
    // Output row length (all rows of W).
    out_len: u32,
    // Rows of x: 0 means T.
    fixed_tokens: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// Decode (one token): each workgroup of 64 takes ROWS_PER_GROUP rows in turn; its
// invocations stride along the row 8 weights at a time, then reduce.
override ROWS_PER_GROUP: u32 = 4u;

@compute @workgroup_size(64)
fn matmul_decode(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = workgroup_index(wid, nwg) * ROWS_PER_GROUP;
    let parts = p.cols / 8u;
    let stride = row_bytes(p.cols);
    for (var i = 0u; i < ROWS_PER_GROUP; i++) {
        let r = first + i;
        var acc = 0.0;
        if r < p.rows {
            for (var g = lid; g < parts; g += REDUCE_WIDTH) {
                let w = row_part(r * stride, g);
                for (var k = 0u; k < 8u; k++) {
                    acc += w[k] * x[8u * g + k];
                }
            }
        }
        let total = workgroup_sum(acc, lid);
        if lid == 0u && r < p.rows {
            out[p.first_row + r] = total;
        }
    }
}

// Prefill (several tokens): a workgroup computes a TILE × TILE block of the output
// (rows × tokens), staging TILE rows of W (dequantised) and TILE rows of x, CHUNK
// columns at a time, in workgroup memory.
const TILE: u32 = 16u;
const CHUNK: u32 = 32u;
var<workgroup> w_tile: array<f32, 512>; // TILE × CHUNK
var<workgroup> x_tile: array<f32, 512>; // TILE × CHUNK

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
    let my_row = lid % TILE;
    let my_tok = lid / TILE;
    var acc = 0.0;
    for (var c0 = 0u; c0 < p.cols; c0 += CHUNK) {
        // TILE rows × CHUNK / 8 parts of W: one part per invocation of the first 64.
        if lid < TILE * CHUNK / 8u {
            let r = lid / (CHUNK / 8u);
            let part = lid % (CHUNK / 8u);
            var w: array<f32, 8>;
            if row0 + r < p.rows {
                w = row_part((row0 + r) * stride, c0 / 8u + part);
            }
            for (var k = 0u; k < 8u; k++) {
                w_tile[r * CHUNK + 8u * part + k] = w[k];
            }
        }
        for (var i = lid; i < TILE * CHUNK; i += 256u) {
            let t = tok0 + i / CHUNK;
            var v = 0.0;
            if t < tokens {
                v = x[t * p.cols + c0 + i % CHUNK];
            }
            x_tile[i] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < CHUNK; k++) {
            acc += w_tile[my_row * CHUNK + k] * x_tile[my_tok * CHUNK + k];
        }
        workgroupBarrier();
    }
    let r = row0 + my_row;
    let t = tok0 + my_tok;
    if r < p.rows && t < tokens {
        out[t * p.out_len + p.first_row + r] = acc;
    }
}
