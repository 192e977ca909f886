// Scale and min of sub-block j (0..8) from the 12 packed bytes at `at` (Q4_K, Q5_K):
// 6 bits each, the first four whole in bytes 0..8, the last four split between the
// nibbles of bytes 8..12 and the top bits of bytes 0..8.
fn scale_min_k4(j: u32, at: u32) -> vec2<u32> {
    if j < 4u {
        return vec2<u32>(byte_at(at + j) & 63u, byte_at(at + j + 4u) & 63u);
    }
    let sc = (byte_at(at + j + 4u) & 15u) | ((byte_at(at + j - 4u) >> 6u) << 4u);
    let m = (byte_at(at + j + 4u) >> 4u) | ((byte_at(at + j) >> 6u) << 4u);
    return vec2<u32>(sc, m);
}
