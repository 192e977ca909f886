// Q4_0's dot32 (layout in quant/q4_0.wgsl; a padded block is 5 words, the 16 bytes of
// nibbles starting half way into the first): byte j holds weights j and j + 16.
fn q4_0_low(q: u32) -> vec4<f32> {
    return bytes4(q & 0x0f0f0f0fu, 8.0);
}

fn q4_0_high(q: u32) -> vec4<f32> {
    return bytes4((q >> 4u) & 0x0f0f0f0fu, 8.0);
}

fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let b = (row + g * BLOCK_BYTES) / 4u;
    let w0 = weights[b];
    let w1 = weights[b + 1u];
    let w2 = weights[b + 2u];
    let w3 = weights[b + 3u];
    let w4 = weights[b + 4u];
    // The nibble bytes 4i .. 4i + 4.
    let q0 = (w0 >> 16u) | (w1 << 16u);
    let q1 = (w1 >> 16u) | (w2 << 16u);
    let q2 = (w2 >> 16u) | (w3 << 16u);
    let q3 = (w3 >> 16u) | (w4 << 16u);
    let low = dot(q4_0_low(q0), x.a) + dot(q4_0_low(q1), x.b) + dot(q4_0_low(q2), x.c) + dot(q4_0_low(q3), x.d);
    let high = dot(q4_0_high(q0), x.e) + dot(q4_0_high(q1), x.f) + dot(q4_0_high(q2), x.g) + dot(q4_0_high(q3), x.h);
    return unpack2x16float(w0).x * (low + high);
}

fn dot32_q8(row: u32, g: u32, x: XQ8) -> f32 {
    let b = (row + g * BLOCK_BYTES) / 4u;
    let w0 = weights[b];
    let w1 = weights[b + 1u];
    let w2 = weights[b + 2u];
    let w3 = weights[b + 3u];
    let w4 = weights[b + 4u];
    let q = vec4<u32>((w0 >> 16u) | (w1 << 16u), (w1 >> 16u) | (w2 << 16u), (w2 >> 16u) | (w3 << 16u), (w3 >> 16u) | (w4 << 16u));
    let m = vec4<u32>(0x0f0f0f0fu);
    let dots = run_dots(q & m, (q >> vec4<u32>(4u)) & m, x) - 8 * x.sums;
    return unpack2x16float(w0).x * dot(vec4<f32>(dots), x.scales);
}
