// Q4_K's dot32 (layout in quant/q4_k.wgsl; blocks are whole words): sub-block s of 32
// weights is nibble s % 2 of 8 words; w = d · sc · q − dmin · m, so the dot product
// is d · sc · Σ q·x − dmin · m · Σ x.
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let block = row + (g / 8u) * BLOCK_BYTES;
    let s = g % 8u;
    let dm = unpack2x16float(weights[block / 4u]);
    let sm = scale_min_k4(s, block + 4u);
    let q = (block + 16u + 32u * (s / 2u)) / 4u;
    let shift = 4u * (s % 2u);
    let m = 0x0f0f0f0fu;
    let w0 = (weights[q] >> shift) & m;
    let w1 = (weights[q + 1u] >> shift) & m;
    let w2 = (weights[q + 2u] >> shift) & m;
    let w3 = (weights[q + 3u] >> shift) & m;
    let w4 = (weights[q + 4u] >> shift) & m;
    let w5 = (weights[q + 5u] >> shift) & m;
    let w6 = (weights[q + 6u] >> shift) & m;
    let w7 = (weights[q + 7u] >> shift) & m;
    let dot_q = dot(ubytes4(w0), x.a) + dot(ubytes4(w1), x.b) + dot(ubytes4(w2), x.c)
        + dot(ubytes4(w3), x.d) + dot(ubytes4(w4), x.e) + dot(ubytes4(w5), x.f)
        + dot(ubytes4(w6), x.g) + dot(ubytes4(w7), x.h);
    return dm.x * f32(sm.x) * dot_q - dm.y * f32(sm.y) * x.sum;
}
