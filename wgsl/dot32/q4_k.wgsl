// Q4_K's dot32 (layout in quant/q4_k.wgsl): a block is 9 vec4 words, the header (d,
// dmin, 12 bytes of scales) and then 8 words of nibbles. Slice g is nibble word g % 8
// of block g / 8, so that neighbouring invocations read neighbouring 16 bytes. Its
// low nibbles are 16 weights of sub-block s = 2 · ((g % 8) / 2) and its high nibbles
// the same 16 places of sub-block s + 1, 32 columns further on.
fn columns32(g: u32) -> vec4<u32> {
    let part = g % 8u;
    let first = 256u * (g / 8u) + 64u * (part / 2u) + 16u * (part % 2u);
    return vec4<u32>(first) + vec4<u32>(0u, 8u, 32u, 40u);
}

// Scales and mins of sub-blocks s and s + 1 (s even), as (sc_s, sc_s+1, m_s, m_s+1),
// from the 12 packed bytes in the header's words y, z and w (see `scale_min_k4`):
// bytes s, s + 1 of y and z for s < 4; else the nibbles of bytes s + 4, s + 5 (in w)
// below the top bits of bytes s − 4, s − 3 (in y) and s, s + 1 (in z).
fn scales_mins(header: vec4<u32>, s: u32) -> vec4<f32> {
    let t = 8u * (s % 4u);
    let a = header.y >> t;
    let b = header.z >> t;
    let c = header.w >> t;
    let whole = vec4<u32>(a, a >> 8u, b, b >> 8u) & vec4<u32>(63u);
    let top = vec4<u32>(a >> 6u, a >> 14u, b >> 6u, b >> 14u) & vec4<u32>(3u);
    let split = (vec4<u32>(c, c >> 8u, c >> 4u, c >> 12u) & vec4<u32>(15u)) | (top << vec4<u32>(4u));
    return vec4<f32>(select(split, whole, s < 4u));
}

// w = d · sc · q − dmin · m, so each half's dot product is d · sc · Σ q·x − dmin · m · Σ x.
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let block = row / 16u + (g / 8u) * 9u;
    let part = g % 8u;
    let header = weights4[block];
    let q = weights4[block + 1u + part];
    let dm = unpack2x16float(header.x);
    let sm = scales_mins(header, 2u * (part / 2u));
    let m = 0x0f0f0f0fu;
    let low = dot(bytes4(q.x & m, 0.0), x.a) + dot(bytes4(q.y & m, 0.0), x.b) + dot(bytes4(q.z & m, 0.0), x.c)
        + dot(bytes4(q.w & m, 0.0), x.d);
    let high = dot(bytes4((q.x >> 4u) & m, 0.0), x.e) + dot(bytes4((q.y >> 4u) & m, 0.0), x.f)
        + dot(bytes4((q.z >> 4u) & m, 0.0), x.g) + dot(bytes4((q.w >> 4u) & m, 0.0), x.h);
    return dm.x * (sm.x * low + sm.y * high) - dm.y * (sm.z * x.low_sum + sm.w * x.high_sum);
}
