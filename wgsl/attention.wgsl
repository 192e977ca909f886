// Attention over the KV cache (layout in kv_cache.wgsl), as four ops:
// scores [H, T, ctx] = scale · q·k; the causal (and sliding-window) mask; softmax over
// each row of ctx; and the probability-weighted sum of value rows [T, H·d].
// Query head h reads key/value head h / (n_head / n_head_kv).

struct Params {
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    scale: f32,
    // Keys this far or further before the query are masked; 0: no window.
    window: u32,
    // −∞, which WGSL cannot write as a literal.
    neg_inf: f32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> cache: array<CachePair>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn kv_head(h: u32) -> u32 {
    return h / (p.n_head / p.n_head_kv);
}

// Value `i` of a cache row (an even offset pair holds two).
fn cached(i: u32) -> f32 {
    let pair = cache_pair(cache[i / 2u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

// input: q [T, H·d]. One invocation per score.
@compute @workgroup_size(256)
fn attn_scores(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = item_index(wid, nwg, lid);
    let ctx = step.context;
    if idx >= p.n_head * step.tokens * ctx {
        return;
    }
    let j = idx % ctx;
    let t = (idx / ctx) % step.tokens;
    let h = idx / (ctx * step.tokens);
    let q = t * p.n_head * p.head_dim + h * p.head_dim;
    let k = (j * p.n_head_kv + kv_head(h)) * p.head_dim;
    var acc = 0.0;
    for (var e = 0u; e < p.head_dim; e += 2u) {
        let kv = cache_pair(cache[(k + e) / 2u]);
        acc += input[q + e] * kv.x + input[q + e + 1u] * kv.y;
    }
    out[idx] = p.scale * acc;
}

// input: scores [H, T, ctx]; query t sits at P + t. One invocation per score.
@compute @workgroup_size(256)
fn attn_mask(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = item_index(wid, nwg, lid);
    let ctx = step.context;
    if idx >= p.n_head * step.tokens * ctx {
        return;
    }
    let k_pos = idx % ctx;
    let q_pos = step.past + (idx / ctx) % step.tokens;
    let future = k_pos > q_pos;
    let outside = p.window != 0u && q_pos - min(k_pos, q_pos) >= p.window;
    out[idx] = select(input[idx], p.neg_inf, future || outside);
}

// input: masked scores; one workgroup of 64 per row of ctx.
@compute @workgroup_size(64)
fn softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = workgroup_index(wid, nwg);
    let ctx = step.context;
    if row >= p.n_head * step.tokens {
        return;
    }
    let start = row * ctx;
    var m = p.neg_inf;
    for (var j = lid; j < ctx; j += REDUCE_WIDTH) {
        m = max(m, input[start + j]);
    }
    m = workgroup_max(m, lid);
    var sum = 0.0;
    for (var j = lid; j < ctx; j += REDUCE_WIDTH) {
        let e = exp(input[start + j] - m);
        out[start + j] = e;
        sum += e;
    }
    sum = workgroup_sum(sum, lid);
    for (var j = lid; j < ctx; j += REDUCE_WIDTH) {
        out[start + j] = out[start + j] / sum;
    }
}

// input: probabilities [H, T, ctx]. One invocation per output value of [T, H·d].
@compute @workgroup_size(256)
fn attn_mix(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = item_index(wid, nwg, lid);
    let q_len = p.n_head * p.head_dim;
    if idx >= step.tokens * q_len {
        return;
    }
    let t = idx / q_len;
    let h = (idx % q_len) / p.head_dim;
    let e = idx % p.head_dim;
    let ctx = step.context;
    let probs = (h * step.tokens + t) * ctx;
    let v = kv_head(h) * p.head_dim + e;
    let v_len = p.n_head_kv * p.head_dim;
    var acc = 0.0;
    for (var j = 0u; j < ctx; j++) {
        acc += input[probs + j] * cached(j * v_len + v);
    }
    out[idx] = acc;
}
