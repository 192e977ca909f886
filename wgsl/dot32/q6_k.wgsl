// Q6_K's dot32 (layout in quant/q6_k.wgsl; a padded block is 53 words). Each half of
// a block (128 weights) is four groups of 32: group k takes the low (k < 2) or high
// nibbles of ql[32 · (k % 2) ..] and bit pair k of qh[..], and has a scale per 16.
// Slice g takes 8 places l .. l + 8 of every group of one half, so that it reads 2
// words of qh and 4 of ql once, and neighbouring invocations neighbouring words: run
// k of the slice is group k's.
fn columns32(g: u32) -> vec4<u32> {
    let slice = g % 8u;
    let first = 256u * (g / 8u) + 128u * (slice / 4u) + 8u * (slice % 4u);
    return vec4<u32>(first) + vec4<u32>(0u, 32u, 64u, 96u);
}

struct Q6KSlice {
    d: f32,
    // Each run's scale.
    scales: vec4<f32>,
    // The quants (q, 0 .. 64), four to a word: runs 0 and 1, then 2 and 3.
    lo: vec4<u32>,
    hi: vec4<u32>,
}

fn q6_k_slice(row: u32, g: u32) -> Q6KSlice {
    let block = row + (g / 8u) * BLOCK_BYTES;
    let slice = g % 8u;
    let half = slice / 4u;
    let l = 8u * (slice % 4u);
    let ql = (block + 64u * half + l) / 4u;
    let qh = (block + 128u + 32u * half + l) / 4u;
    let ql0 = weights[ql];
    let ql1 = weights[ql + 1u];
    let ql2 = weights[ql + 8u];
    let ql3 = weights[ql + 9u];
    let qh0 = weights[qh];
    let qh1 = weights[qh + 1u];
    // Group k's scale for places l .. l + 8 is byte 8 · half + l / 16 + 2k of the 16.
    let sc = (block + 192u + 8u * half) / 4u;
    let sc0 = weights[sc];
    let sc1 = weights[sc + 1u];
    let is = l / 16u;
    var s: Q6KSlice;
    s.d = unpack2x16float(weights[(block + 208u) / 4u]).x;
    s.scales = vec4<f32>(i8_of_word(sc0, is), i8_of_word(sc0, is + 2u), i8_of_word(sc1, is), i8_of_word(sc1, is + 2u));
    s.lo = vec4<u32>(q6_word(ql0, qh0, 0u, 0u), q6_word(ql1, qh1, 0u, 0u), q6_word(ql2, qh0, 0u, 2u), q6_word(ql3, qh1, 0u, 2u));
    s.hi = vec4<u32>(q6_word(ql0, qh0, 4u, 4u), q6_word(ql1, qh1, 4u, 4u), q6_word(ql2, qh0, 4u, 6u), q6_word(ql3, qh1, 4u, 6u));
    return s;
}

// w = d · sc · (q − 32).
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let s = q6_k_slice(row, g);
    return s.d * dot(run_sums(s.lo, s.hi, 32.0, x), s.scales);
}

fn dot32_q8(row: u32, g: u32, x: XQ8) -> f32 {
    let s = q6_k_slice(row, g);
    let dots = run_dots(s.lo, s.hi, x) - 32 * x.sums;
    return s.d * dot(vec4<f32>(dots), x.scales * s.scales);
}
