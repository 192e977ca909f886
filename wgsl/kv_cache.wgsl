// The KV cache: a `[capacity, row_len]` tensor stored as pairs of values (row_len is
// even), each a `CachePair` of the cache type (kv/f16.wgsl, kv/f32.wgsl).
// `cache_write` stores this step's T rows at positions P .. P + T.

struct Params {
    row_len: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> cache: array<CachePair>;

// One invocation per pair of values.
@compute @workgroup_size(256)
fn cache_write(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pair = item_index(wid, nwg, lid);
    if pair >= step.tokens * p.row_len / 2u {
        return;
    }
    let v = vec2<f32>(x[2u * pair], x[2u * pair + 1u]);
    cache[step.past * p.row_len / 2u + pair] = stored_pair(v);
}
