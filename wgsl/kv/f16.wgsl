// The f16 KV cache: each element holds a pair of consecutive values, packed into one
// u32 (value 2i in the low half, 2i + 1 in the high half). Core WGSL has no f16
// storage, so this is the portable form.
alias CachePair = u32;
const PAIR_BYTES: u32 = 4u;

fn cache_pair(stored: CachePair) -> vec2<f32> {
    return unpack2x16float(stored);
}

fn stored_pair(values: vec2<f32>) -> CachePair {
    return pack2x16float(values);
}
