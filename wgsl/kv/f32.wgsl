// The f32 KV cache: each element holds a pair of consecutive values as they are.
alias CachePair = vec2<f32>;
const PAIR_BYTES: u32 = 8u;

fn cache_pair(stored: CachePair) -> vec2<f32> {
    return stored;
}

fn stored_pair(values: vec2<f32>) -> CachePair {
    return values;
}
