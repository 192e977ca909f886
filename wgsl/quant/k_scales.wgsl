// Scales and mins of sub-blocks s and s + 1 (s even), as (sc_s, sc_s+1, m_s, m_s+1),
// from the 12 packed bytes in the header's words y, z and w (Q4_K, Q5_K): 6 bits each,
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

// The header of the block at byte `block`: d and dmin, then the 12 bytes of scales.
fn k_header(block: u32) -> vec4<u32> {
    let w = block / 4u;
    return vec4<u32>(weights[w], weights[w + 1u], weights[w + 2u], weights[w + 3u]);
}

// Scale and min of sub-block s (0..8), times d and dmin.
fn scale_min(header: vec4<u32>, s: u32) -> vec2<f32> {
    let sm = scales_mins(header, s & ~1u);
    let odd = (s & 1u) == 1u;
    return unpack2x16float(header.x) * vec2<f32>(select(sm.x, sm.y, odd), select(sm.z, sm.w, odd));
}
