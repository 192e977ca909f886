// Q8_0's dot32 (layout in quant/q8_0.wgsl; a padded block is 9 words, the 32 signed
// bytes starting half way into the first).
fn q8_0_bytes(lo: u32, hi: u32) -> vec4<f32> {
    // Flipping each sign bit adds 128 to the byte as two's complement.
    return bytes4(((lo >> 16u) | (hi << 16u)) ^ 0x80808080u, 128.0);
}

fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let b = (row + g * BLOCK_BYTES) / 4u;
    let w0 = weights[b];
    let w1 = weights[b + 1u];
    let w2 = weights[b + 2u];
    let w3 = weights[b + 3u];
    let w4 = weights[b + 4u];
    let w5 = weights[b + 5u];
    let w6 = weights[b + 6u];
    let w7 = weights[b + 7u];
    let w8 = weights[b + 8u];
    let acc = dot(q8_0_bytes(w0, w1), x.a) + dot(q8_0_bytes(w1, w2), x.b)
        + dot(q8_0_bytes(w2, w3), x.c) + dot(q8_0_bytes(w3, w4), x.d)
        + dot(q8_0_bytes(w4, w5), x.e) + dot(q8_0_bytes(w5, w6), x.f)
        + dot(q8_0_bytes(w6, w7), x.g) + dot(q8_0_bytes(w7, w8), x.h);
    return unpack2x16float(w0).x * acc;
}

fn dot32_q8(row: u32, g: u32, x: XQ8) -> f32 {
    let b = (row + g * BLOCK_BYTES) / 4u;
    let w0 = weights[b];
    let w1 = weights[b + 1u];
    let w2 = weights[b + 2u];
    let w3 = weights[b + 3u];
    let w4 = weights[b + 4u];
    let w5 = weights[b + 5u];
    let w6 = weights[b + 6u];
    let w7 = weights[b + 7u];
    let w8 = weights[b + 8u];
    let lo = vec4<u32>((w0 >> 16u) | (w1 << 16u), (w1 >> 16u) | (w2 << 16u), (w2 >> 16u) | (w3 << 16u), (w3 >> 16u) | (w4 << 16u));
    let hi = vec4<u32>((w4 >> 16u) | (w5 << 16u), (w5 >> 16u) | (w6 << 16u), (w6 >> 16u) | (w7 << 16u), (w7 >> 16u) | (w8 << 16u));
    return unpack2x16float(w0).x * dot(vec4<f32>(run_dots(lo, hi, x)), x.scales);
}
