// The prefill matmul on cooperative matrices (tensor cores), for adapters that have
// 16 × 16 × 16 multiplies of f16 into f32 and subgroups of 32: appended to the matmul
// module (its Params, bindings and `store`) after the `enable` directives, and run
// only where the device was opened with tensor cores. The same 64 × 64 output tile as
// `matmul_prefill`; W and x are rounded to f16 as they are staged, the sums are f32.
//
// Each chunk of CHUNK columns is staged as f16: W's 64 rows × 32 columns, row-major,
// and x's 32 columns × 64 tokens. Subgroup s (of two) multiplies rows 32·s .. + 32 by
// all 64 tokens: two row blocks by four token blocks of 16 × 16, eight accumulators.

var<workgroup> w16: array<f16, 2048>;
var<workgroup> x16: array<f16, 2048>;
// The tile's sums, rows × tokens, for the masked store with the residual.
var<workgroup> sums: array<f32, 4096>;

alias A16 = coop_mat16x16<f16, A>;
alias B16 = coop_mat16x16<f16, B>;
alias C32 = coop_mat16x16<f32, C>;

@compute @workgroup_size(64)
fn matmul_prefill_coop(
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
    // What this invocation stages, as matmul_prefill: four rows (tokens) 4·quad .. + 4,
    // columns 8·part .. + 8 of the chunk.
    let quad = lid % 16u;
    let part = lid / 16u;
    let rows = 32u * (lid / 32u);
    var c00 = C32();
    var c01 = C32();
    var c02 = C32();
    var c03 = C32();
    var c10 = C32();
    var c11 = C32();
    var c12 = C32();
    var c13 = C32();
    for (var c0 = 0u; c0 < p.cols; c0 += CHUNK) {
        let g = c0 / 8u + part;
        let t = tok0 + 4u * quad;
        let last = tokens - 1u;
        for (var i = 0u; i < 4u; i++) {
            let r = row0 + 4u * quad + i;
            let w = row_part(min(r, p.rows - 1u) * stride, g);
            for (var k = 0u; k < 8u; k++) {
                w16[(4u * quad + i) * CHUNK + 8u * part + k] = f16(w[k]);
                x16[(8u * part + k) * TILE + 4u * quad + i] = f16(x_at(min(t + i, last), c0 + 8u * part + k));
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < CHUNK; kk += 16u) {
            let a0 = coopLoadT<A16>(&w16[rows * CHUNK + kk], CHUNK);
            let a1 = coopLoadT<A16>(&w16[(rows + 16u) * CHUNK + kk], CHUNK);
            let b0 = coopLoadT<B16>(&x16[kk * TILE], TILE);
            let b1 = coopLoadT<B16>(&x16[kk * TILE + 16u], TILE);
            let b2 = coopLoadT<B16>(&x16[kk * TILE + 32u], TILE);
            let b3 = coopLoadT<B16>(&x16[kk * TILE + 48u], TILE);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c02 = coopMultiplyAdd(a0, b2, c02);
            c03 = coopMultiplyAdd(a0, b3, c03);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c12 = coopMultiplyAdd(a1, b2, c12);
            c13 = coopMultiplyAdd(a1, b3, c13);
        }
        workgroupBarrier();
    }
    coopStoreT(c00, &sums[rows * TILE], TILE);
    coopStoreT(c01, &sums[rows * TILE + 16u], TILE);
    coopStoreT(c02, &sums[rows * TILE + 32u], TILE);
    coopStoreT(c03, &sums[rows * TILE + 48u], TILE);
    coopStoreT(c10, &sums[(rows + 16u) * TILE], TILE);
    coopStoreT(c11, &sums[(rows + 16u) * TILE + 16u], TILE);
    coopStoreT(c12, &sums[(rows + 16u) * TILE + 32u], TILE);
    coopStoreT(c13, &sums[(rows + 16u) * TILE + 48u], TILE);
    workgroupBarrier();
    // Invocation i stores row i for every token: neighbours write neighbouring columns.
    for (var j = 0u; j < TILE; j++) {
        if row0 + lid < p.rows && tok0 + j < tokens {
            store(tok0 + j, row0 + lid, sums[lid * TILE + j]);
        }
    }
}
