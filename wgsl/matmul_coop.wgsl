// The prefill matmul on cooperative matrices (tensor cores), for adapters that have
// 16 × 16 × 16 multiplies of f16 into f32 and subgroups of 32: appended to the matmul
// module (its Params, bindings and `store`) after the `enable` directives, and run
// only where the device was opened with tensor cores. W is rounded to f16 as it is
// staged, x by `matmul_x_half` before; the sums are f32.
//
// A workgroup of 128 (four subgroups) computes 64 rows × COOP_TOKENS (256) tokens, so
// that each chunk of W it dequantises serves 256 tokens: staging, not multiplying, is
// what a prefill matmul spends its time on. Subgroup s multiplies all 64 rows by tokens
// 64·s .. + 64: four row blocks by four token blocks of 16 × 16, so that each block it
// loads serves four multiplies. Only W passes through workgroup memory; x's blocks
// load straight from `x_half`. The sums go straight to `out`, whole tiles: the
// executor gives every activation rows for a whole number of tiles of tokens (the rows
// past the step's are never read), and runs this kernel only on whole tiles of 64 rows.

const COOP_TOKENS: u32 = 256u;
// A chunk's W, rows × CHUNK columns.
var<workgroup> w16: array<f16, 2048>;

// x rounded to f16, token-major and contiguous (`matmul_x_half` writes it): a B block
// (16 columns × 16 tokens) is then one column-major load.
@group(0) @binding(10) var<storage, read_write> x_half: array<f16>;

// Activations beyond f16's range saturate there rather than turn infinite.
const F16_MAX: f32 = 65504.0;

// x's rows of this step rounded to f16 into `x_half` (row t at t · cols), four values
// an invocation.
@compute @workgroup_size(256)
fn matmul_x_half(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = item_index(wid, nwg, lid);
    let quads = p.cols / 4u;
    let t = i / quads;
    if t >= row_count(p.fixed_tokens) {
        return;
    }
    let k = 4u * (i % quads);
    // x through `x_at`, not `x_vec4`: with a folded prologue that holds the rows
    // before the norm.
    let v = vec4<f32>(x_at(t, k), x_at(t, k + 1u), x_at(t, k + 2u), x_at(t, k + 3u));
    let h = vec4<f16>(clamp(v, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX)));
    let at = t * p.cols + k;
    x_half[at] = h.x;
    x_half[at + 1u] = h.y;
    x_half[at + 2u] = h.z;
    x_half[at + 3u] = h.w;
}

alias A16 = coop_mat16x16<f16, A>;
alias B16 = coop_mat16x16<f16, B>;
alias C32 = coop_mat16x16<f32, C>;

// The residual's 16 rows × 16 tokens from `at` (token-major, `ld` apart).
fn residual_tile(at: u32, ld: u32) -> C32 {
    return coopLoad<C32>(&residual[at], ld);
}

// Where the output's block of rows 16·i .. and tokens 16·j .. starts, from `at`
// (token-major, `ld` apart).
fn block_at(at: u32, i: u32, j: u32, ld: u32) -> u32 {
    return at + 16u * (j * ld + i);
}

@compute @workgroup_size(128)
fn matmul_prefill_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let origin = tile_origin(workgroup_index(wid, nwg), COOP_TOKENS);
    let row0 = origin.x;
    let tok0 = origin.y;
    let stride = row_bytes(p.cols);
    // This subgroup's tokens, as an offset in the tile; its sums (c<i><j>: rows block
    // i, tokens block j) start from the residual (token-major: column-major in rows ×
    // tokens).
    let toks = 64u * (lid / 32u);
    // (A stride read from `p` straight into a cooperative load or store trips naga
    // 30's SPIR-V writer; a `let` first does not.)
    let ld = p.out_len;
    let at = (tok0 + toks) * ld + p.first_row + row0;
    var c00 = C32();
    var c01 = C32();
    var c02 = C32();
    var c03 = C32();
    var c10 = C32();
    var c11 = C32();
    var c12 = C32();
    var c13 = C32();
    var c20 = C32();
    var c21 = C32();
    var c22 = C32();
    var c23 = C32();
    var c30 = C32();
    var c31 = C32();
    var c32 = C32();
    var c33 = C32();
    if p.residual == 1u {
        c00 = residual_tile(block_at(at, 0u, 0u, ld), ld);
        c01 = residual_tile(block_at(at, 0u, 1u, ld), ld);
        c02 = residual_tile(block_at(at, 0u, 2u, ld), ld);
        c03 = residual_tile(block_at(at, 0u, 3u, ld), ld);
        c10 = residual_tile(block_at(at, 1u, 0u, ld), ld);
        c11 = residual_tile(block_at(at, 1u, 1u, ld), ld);
        c12 = residual_tile(block_at(at, 1u, 2u, ld), ld);
        c13 = residual_tile(block_at(at, 1u, 3u, ld), ld);
        c20 = residual_tile(block_at(at, 2u, 0u, ld), ld);
        c21 = residual_tile(block_at(at, 2u, 1u, ld), ld);
        c22 = residual_tile(block_at(at, 2u, 2u, ld), ld);
        c23 = residual_tile(block_at(at, 2u, 3u, ld), ld);
        c30 = residual_tile(block_at(at, 3u, 0u, ld), ld);
        c31 = residual_tile(block_at(at, 3u, 1u, ld), ld);
        c32 = residual_tile(block_at(at, 3u, 2u, ld), ld);
        c33 = residual_tile(block_at(at, 3u, 3u, ld), ld);
    }
    // What this invocation stages: 16 columns of row lid / 2.
    let w_row = lid / 2u;
    let w_part = 2u * (lid % 2u);
    let w_at = (row0 + w_row) * stride;
    let cols = p.cols;
    // This subgroup's x blocks: token block j starts 16·j tokens on.
    let x_at = (tok0 + toks) * cols;
    let x_step16 = 16u * cols;
    for (var c0 = 0u; c0 < cols; c0 += CHUNK) {
        let w = row_part(w_at, c0 / 8u + w_part);
        let w_next = row_part(w_at, c0 / 8u + w_part + 1u);
        for (var k = 0u; k < 8u; k++) {
            w16[w_row * CHUNK + 8u * w_part + k] = f16(w[k]);
            w16[w_row * CHUNK + 8u * w_part + 8u + k] = f16(w_next[k]);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < CHUNK; kk += 16u) {
            let b = x_at + c0 + kk;
            let b0 = coopLoad<B16>(&x_half[b], cols);
            let b1 = coopLoad<B16>(&x_half[b + x_step16], cols);
            let b2 = coopLoad<B16>(&x_half[b + 2u * x_step16], cols);
            let b3 = coopLoad<B16>(&x_half[b + 3u * x_step16], cols);
            let a0 = coopLoadT<A16>(&w16[kk], CHUNK);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c02 = coopMultiplyAdd(a0, b2, c02);
            c03 = coopMultiplyAdd(a0, b3, c03);
            let a1 = coopLoadT<A16>(&w16[16u * CHUNK + kk], CHUNK);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c12 = coopMultiplyAdd(a1, b2, c12);
            c13 = coopMultiplyAdd(a1, b3, c13);
            let a2 = coopLoadT<A16>(&w16[32u * CHUNK + kk], CHUNK);
            c20 = coopMultiplyAdd(a2, b0, c20);
            c21 = coopMultiplyAdd(a2, b1, c21);
            c22 = coopMultiplyAdd(a2, b2, c22);
            c23 = coopMultiplyAdd(a2, b3, c23);
            let a3 = coopLoadT<A16>(&w16[48u * CHUNK + kk], CHUNK);
            c30 = coopMultiplyAdd(a3, b0, c30);
            c31 = coopMultiplyAdd(a3, b1, c31);
            c32 = coopMultiplyAdd(a3, b2, c32);
            c33 = coopMultiplyAdd(a3, b3, c33);
        }
        workgroupBarrier();
    }
    coopStore(c00, &out[block_at(at, 0u, 0u, ld)], ld);
    coopStore(c01, &out[block_at(at, 0u, 1u, ld)], ld);
    coopStore(c02, &out[block_at(at, 0u, 2u, ld)], ld);
    coopStore(c03, &out[block_at(at, 0u, 3u, ld)], ld);
    coopStore(c10, &out[block_at(at, 1u, 0u, ld)], ld);
    coopStore(c11, &out[block_at(at, 1u, 1u, ld)], ld);
    coopStore(c12, &out[block_at(at, 1u, 2u, ld)], ld);
    coopStore(c13, &out[block_at(at, 1u, 3u, ld)], ld);
    coopStore(c20, &out[block_at(at, 2u, 0u, ld)], ld);
    coopStore(c21, &out[block_at(at, 2u, 1u, ld)], ld);
    coopStore(c22, &out[block_at(at, 2u, 2u, ld)], ld);
    coopStore(c23, &out[block_at(at, 2u, 3u, ld)], ld);
    coopStore(c30, &out[block_at(at, 3u, 0u, ld)], ld);
    coopStore(c31, &out[block_at(at, 3u, 1u, ld)], ld);
    coopStore(c32, &out[block_at(at, 3u, 2u, ld)], ld);
    coopStore(c33, &out[block_at(at, 3u, 3u, ld)], ld);
}
