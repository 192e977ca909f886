// Q6_K's dot32 (layout in quant/q6_k.wgsl; a padded block is 53 words): chunk i of 32
// weights takes 8 words of low nibbles and 8 of high bit pairs; its first and last
// 16 weights have a scale each.
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let block = row + (g / 8u) * BLOCK_BYTES;
    let i = g % 8u;
    let half = i / 4u;
    let quarter = i % 4u;
    let ql = (block + 64u * half + 32u * (quarter % 2u)) / 4u;
    let qh = (block + 128u + 32u * half) / 4u;
    let lo = 4u * (quarter / 2u);
    let hi = 2u * quarter;
    let first = dot(q6_k_quants(ql, qh, lo, hi), x.a) + dot(q6_k_quants(ql + 1u, qh + 1u, lo, hi), x.b)
        + dot(q6_k_quants(ql + 2u, qh + 2u, lo, hi), x.c) + dot(q6_k_quants(ql + 3u, qh + 3u, lo, hi), x.d);
    let second = dot(q6_k_quants(ql + 4u, qh + 4u, lo, hi), x.e) + dot(q6_k_quants(ql + 5u, qh + 5u, lo, hi), x.f)
        + dot(q6_k_quants(ql + 6u, qh + 6u, lo, hi), x.g) + dot(q6_k_quants(ql + 7u, qh + 7u, lo, hi), x.h);
    let sc = block + 192u + 2u * i;
    return f16_at(block + 208u) * (f32(i8_at(sc)) * first + f32(i8_at(sc + 1u)) * second);
}

// Four weights (q − 32) from word `ql` of low nibbles and word `qh` of high bit pairs.
fn q6_k_quants(ql: u32, qh: u32, lo_shift: u32, hi_shift: u32) -> vec4<f32> {
    let low = (weights[ql] >> lo_shift) & 0x0f0f0f0fu;
    let high = (weights[qh] >> hi_shift) & 0x03030303u;
    return ubytes4(low | (high << 4u)) - 32.0;
}
