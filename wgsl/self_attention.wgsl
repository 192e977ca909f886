// The fused `attention` node: causal (optionally sliding-window) self-attention over
// the KV caches (layout in kv_cache.wgsl) and this step's own keys and values.
//
// A workgroup attends four queries of one kv head at once (`attend4`), so that each
// key and value load serves four of them: four query heads of a kv group in a decode
// step, four consecutive tokens of a query head in a longer one.
//
// A decode step (one token) splits the keys into at most MAX_RUNS runs of whole
// blocks: `attention_split` takes one run per workgroup, its softmax unnormalised (the
// largest score, the sum of exponentials, the weighted values), and
// `attention_combine` rescales the runs to their common maximum and adds them up. The
// workgroup whose run ends at the step's own position stores the step's key and value
// rows first, so that every key comes from the cache, with no branch between cache and
// input to serialise the loads.
//
// A longer step (`attention`) reads past positions from the caches and its own rows
// from its inputs, rounded as the cache would return them; a cache that holds every
// position then takes the step's rows in the same dispatch (they go to slots no query
// of the step reads from the cache), and a ring cache (a sliding window's, slot =
// position mod ring) in a `cache_store` dispatch after every query has read, so that
// it never loses a key a query of the step needs.

struct Params {
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    scale: f32,
    // Keys this far or further before the query are not seen; 0: no window.
    window: u32,
    // Positions of a ring cache; 0: the cache holds every position.
    ring: u32,
    // q, k and v are views: value e of row t is at t · stride + offset + e.
    q_offset: u32,
    q_stride: u32,
    k_offset: u32,
    k_stride: u32,
    v_offset: u32,
    v_stride: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> k_cache: array<CachePair>;
@group(0) @binding(6) var<storage, read_write> v_cache: array<CachePair>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
// A decode step's runs: two words (maximum, sum) per head and run, then each head and
// run's head_dim weighted values.
@group(0) @binding(8) var<storage, read_write> runs: array<f32>;

fn kv_row_len() -> u32 {
    return p.n_head_kv * p.head_dim;
}

// Where position j's row starts in a cache, in values.
fn cache_row(j: u32) -> u32 {
    return select(j, j % p.ring, p.ring != 0u) * kv_row_len();
}

// Whether position j's key and value are read from the caches: past positions, and in
// a decode step every position (its workgroups store the step's own first). `decode` is
// a constant at each call of `attend`, so that the decode kernel has no branch between
// cache and input: a branch around loads keeps them from being in flight together.
fn from_cache(j: u32, decode: bool) -> bool {
    return decode || j < step.past;
}

// Scale-free scores of the four queries (in q_rows) with position j's key, head kvh,
// 16 values at a time.
fn key_dot4(j: u32, kvh: u32, decode: bool) -> vec4<f32> {
    var acc = vec4<f32>();
    if from_cache(j, decode) {
        let base = (cache_row(j) + kvh * p.head_dim) / 2u;
        for (var e = 0u; e < p.head_dim; e += 16u) {
            let w = base + e / 2u;
            let a = vec4<f32>(cache_pair(k_cache[w]), cache_pair(k_cache[w + 1u]));
            let b = vec4<f32>(cache_pair(k_cache[w + 2u]), cache_pair(k_cache[w + 3u]));
            let c = vec4<f32>(cache_pair(k_cache[w + 4u]), cache_pair(k_cache[w + 5u]));
            let d = vec4<f32>(cache_pair(k_cache[w + 6u]), cache_pair(k_cache[w + 7u]));
            acc += dot16(e, a, b, c, d);
        }
    } else {
        let base = (j - step.past) * p.k_stride + p.k_offset + kvh * p.head_dim;
        for (var e = 0u; e < p.head_dim; e += 16u) {
            let a = as_stored4(input4(base + e));
            let b = as_stored4(input4(base + e + 4u));
            let c = as_stored4(input4(base + e + 8u));
            let d = as_stored4(input4(base + e + 12u));
            acc += dot16(e, a, b, c, d);
        }
    }
    return acc;
}

// The four queries' values e .. e + 16 with key values a, b, c, d.
fn dot16(e: u32, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        dot(q4(0u, e), a) + dot(q4(0u, e + 4u), b) + dot(q4(0u, e + 8u), c) + dot(q4(0u, e + 12u), d),
        dot(q4(1u, e), a) + dot(q4(1u, e + 4u), b) + dot(q4(1u, e + 8u), c) + dot(q4(1u, e + 12u), d),
        dot(q4(2u, e), a) + dot(q4(2u, e + 4u), b) + dot(q4(2u, e + 8u), c) + dot(q4(2u, e + 12u), d),
        dot(q4(3u, e), a) + dot(q4(3u, e + 4u), b) + dot(q4(3u, e + 8u), c) + dot(q4(3u, e + 12u), d),
    );
}

// Values e .. e + 4 of query i.
fn q4(i: u32, e: u32) -> vec4<f32> {
    let at = i * MAX_HEAD_DIM + e;
    return vec4<f32>(q_rows[at], q_rows[at + 1u], q_rows[at + 2u], q_rows[at + 3u]);
}

fn input4(at: u32) -> vec4<f32> {
    return vec4<f32>(k[at], k[at + 1u], k[at + 2u], k[at + 3u]);
}

// An invocation's share of a value row: value pairs (words) lid and lid + 64 of kv
// head kvh, as (2·lid, 2·lid + 1, 2·lid + 128, 2·lid + 129); 0 past the head's end.
// The loads use clamped indices and the values past the end are zeroed after: a load
// inside a branch waits for the loads before it.
fn values4(j: u32, kvh: u32, lid: u32, decode: bool) -> vec4<f32> {
    let pairs = p.head_dim / 2u;
    let a = min(lid, pairs - 1u);
    let b = min(lid + BLOCK, pairs - 1u);
    var values: vec4<f32>;
    if from_cache(j, decode) {
        let base = (cache_row(j) + kvh * p.head_dim) / 2u;
        values = vec4<f32>(cache_pair(v_cache[base + a]), cache_pair(v_cache[base + b]));
    } else {
        let base = (j - step.past) * p.v_stride + p.v_offset + kvh * p.head_dim;
        let row = vec4<f32>(v[base + 2u * a], v[base + 2u * a + 1u], v[base + 2u * b], v[base + 2u * b + 1u]);
        values = as_stored4(row);
    }
    let inside = own_pairs(lid);
    return select(vec4<f32>(), values, vec4<bool>(inside.x, inside.x, inside.y, inside.y));
}

// Keys a workgroup scores at once (one per invocation).
const BLOCK: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
// Below every score, finite so that exp(m − m′) is 0 rather than NaN.
const LOWEST: f32 = -3.0e38;
// The four queries' rows; each key's probabilities for them.
var<workgroup> q_rows: array<f32, 4 * MAX_HEAD_DIM>;
var<workgroup> block_probs: array<vec4<f32>, BLOCK>;
var<workgroup> reduce4_scratch: array<vec4<f32>, BLOCK>;

// Each lane's sum (or, with `maximum`, largest value) of `value` over the workgroup.
fn workgroup_reduce4(value: vec4<f32>, lid: u32, maximum: bool) -> vec4<f32> {
    reduce4_scratch[lid] = value;
    workgroupBarrier();
    for (var stride = BLOCK / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            let a = reduce4_scratch[lid];
            let b = reduce4_scratch[lid + stride];
            reduce4_scratch[lid] = select(a + b, max(a, b), maximum);
        }
        workgroupBarrier();
    }
    let total = reduce4_scratch[0];
    workgroupBarrier();
    return total;
}

// The keys a query at `pos` sees start here.
fn first_key(pos: u32) -> u32 {
    if p.window == 0u {
        return 0u;
    }
    return pos + 1u - min(p.window, pos + 1u);
}

// Keys per run when a decode step's query sees `keys` keys: whole blocks, at most
// MAX_RUNS runs (`attention_run_len` in src/runtime/gpu/executor.rs says the same).
const MAX_RUNS: u32 = 64u;

fn run_len(keys: u32) -> u32 {
    let blocks = (keys + BLOCK - 1u) / BLOCK;
    return BLOCK * ((blocks + MAX_RUNS - 1u) / MAX_RUNS);
}

// The four queries a workgroup attends: query i is token t[i] of head h[i] (all of
// one kv head) and sees keys first[i] ..= last[i]; a lane that is not `live` holds no
// query and sees no key.
struct Lanes {
    h: vec4<u32>,
    t: vec4<u32>,
    first: vec4<u32>,
    last: vec4<u32>,
    live: vec4<bool>,
}

// The live queries' rows into q_rows, zeros for the others (the caller's barrier
// publishes them).
fn load_queries(lanes: Lanes, lid: u32) {
    for (var i = 0u; i < 4u; i++) {
        let row = lanes.t[i] * p.q_stride + p.q_offset + lanes.h[i] * p.head_dim;
        for (var e = lid; e < p.head_dim; e += BLOCK) {
            q_rows[i * MAX_HEAD_DIM + e] = select(0.0, q[row + e], lanes.live[i]);
        }
    }
}

// The softmax of four queries over keys lo .. hi, unnormalised: per query the largest
// score `m`, the sum of exp(score − m), and this invocation's share (see `values4`)
// of the values weighted by exp(score − m): acc[i] for query i.
struct Run4 {
    m: vec4<f32>,
    sum: vec4<f32>,
    acc: mat4x4<f32>,
}

// Keys are taken BLOCK at a time (one per invocation); the softmax runs online: the
// running maximum rescales the sum and the accumulated values when it grows.
// Invocations past the last key score it again (branch-free loads, as in `values4`)
// and drop it.
fn attend4(kvh: u32, lo: u32, hi: u32, lanes: Lanes, lid: u32, decode: bool) -> Run4 {
    var m = vec4<f32>(LOWEST);
    var sum = vec4<f32>();
    var acc = mat4x4<f32>();
    for (var j0 = lo; j0 < hi; j0 += BLOCK) {
        let j = min(j0 + lid, hi - 1u);
        let seen = lanes.live & vec4<bool>(j0 + lid < hi) & (vec4<u32>(j) >= lanes.first)
            & (vec4<u32>(j) <= lanes.last);
        let score = select(vec4<f32>(LOWEST), p.scale * key_dot4(j, kvh, decode), seen);
        let m_new = max(m, workgroup_reduce4(score, lid, true));
        let prob = select(vec4<f32>(), exp(score - m_new), seen);
        block_probs[lid] = prob;
        let rescale = exp(m - m_new);
        sum = sum * rescale + workgroup_reduce4(prob, lid, false);
        m = m_new;
        acc = mat4x4<f32>(acc[0] * rescale.x, acc[1] * rescale.y, acc[2] * rescale.z, acc[3] * rescale.w);
        // Four keys at a time, their value loads in flight together; keys past the
        // block's last (probability 0) read the last key's values instead.
        let keys = min(BLOCK, hi - j0);
        let last = j0 + keys - 1u;
        for (var jj = 0u; jj < keys; jj += 4u) {
            let v0 = values4(j0 + jj, kvh, lid, decode);
            let v1 = values4(min(j0 + jj + 1u, last), kvh, lid, decode);
            let v2 = values4(min(j0 + jj + 2u, last), kvh, lid, decode);
            let v3 = values4(min(j0 + jj + 3u, last), kvh, lid, decode);
            // Rows: keys jj .. jj + 4; columns: the four queries.
            let probs = transpose(mat4x4<f32>(
                block_probs[jj],
                block_probs[jj + 1u],
                block_probs[jj + 2u],
                block_probs[jj + 3u],
            ));
            let values = mat4x4<f32>(v0, v1, v2, v3);
            acc += values * probs;
        }
        workgroupBarrier();
    }
    return Run4(m, sum, acc);
}

// Which of an invocation's value pairs (2·lid, then 2·lid + 128) lie inside the head.
fn own_pairs(lid: u32) -> vec2<bool> {
    return vec2<bool>(2u * lid < p.head_dim, 2u * (lid + BLOCK) < p.head_dim);
}

// Writes an invocation's four values of a head's row starting at `row` in `out`.
fn write_out(row: u32, values: vec4<f32>, lid: u32) {
    let inside = own_pairs(lid);
    if inside.x {
        out[row + 2u * lid] = values.x;
        out[row + 2u * lid + 1u] = values.y;
    }
    if inside.y {
        out[row + 2u * (lid + BLOCK)] = values.z;
        out[row + 2u * (lid + BLOCK) + 1u] = values.w;
    }
}

fn heads_per_kv() -> u32 {
    return p.n_head / p.n_head_kv;
}

// A step of several tokens: one workgroup per query head and four consecutive tokens.
@compute @workgroup_size(64)
fn attention(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let unit = workgroup_index(wid, nwg);
    let h = unit % p.n_head;
    let t0 = 4u * (unit / p.n_head);
    if t0 >= step.tokens {
        return;
    }
    let kvh = h / heads_per_kv();
    let t = vec4<u32>(t0) + vec4<u32>(0u, 1u, 2u, 3u);
    let live = t < vec4<u32>(step.tokens);
    let pos = vec4<u32>(step.past) + min(t, vec4<u32>(step.tokens - 1u));
    let first = vec4<u32>(first_key(pos.x), first_key(pos.y), first_key(pos.z), first_key(pos.w));
    let lanes = Lanes(vec4<u32>(h), min(t, vec4<u32>(step.tokens - 1u)), first, pos, live);
    load_queries(lanes, lid);
    workgroupBarrier();
    let run = attend4(kvh, first.x, pos.w + 1u, lanes, lid, false);
    for (var i = 0u; i < 4u; i++) {
        if live[i] {
            write_out(t[i] * p.n_head * p.head_dim + h * p.head_dim, run.acc[i] / run.sum[i], lid);
        }
    }
    // The first query head of each kv head stores the kv head's rows (a ring's wait
    // for `cache_store`).
    if p.ring == 0u && h % heads_per_kv() == 0u {
        let start = kvh * p.head_dim;
        for (var i = 0u; i < 4u; i++) {
            for (var e = 2u * lid; live[i] && e < p.head_dim; e += 2u * BLOCK) {
                store_pair(t[i], start + e);
            }
        }
    }
}

// Where head h's run r keeps its maximum and sum, and its values.
fn run_stats(h: u32, r: u32) -> u32 {
    return 2u * (h * MAX_RUNS + r);
}

fn run_values(h: u32, r: u32) -> u32 {
    return 2u * p.n_head * MAX_RUNS + (h * MAX_RUNS + r) * p.head_dim;
}

// A decode step: one workgroup per kv head, four of its query heads and run of keys
// (`attention_groups` in src/runtime/gpu/executor.rs counts them).
@compute @workgroup_size(64)
fn attention_split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let unit = workgroup_index(wid, nwg);
    let quads = (heads_per_kv() + 3u) / 4u;
    let r = unit / (p.n_head_kv * quads);
    let kvh = (unit % (p.n_head_kv * quads)) / quads;
    let quad = unit % quads;
    let pos = step.past;
    let first = first_key(pos);
    let len = run_len(pos + 1u - first);
    let lo = first + r * len;
    if lo > pos {
        return;
    }
    let hi = min(lo + len, pos + 1u);
    let in_group = vec4<u32>(4u * quad) + vec4<u32>(0u, 1u, 2u, 3u);
    let live = in_group < vec4<u32>(heads_per_kv());
    let h = vec4<u32>(kvh * heads_per_kv()) + min(in_group, vec4<u32>(heads_per_kv() - 1u));
    let lanes = Lanes(h, vec4<u32>(0u), vec4<u32>(first), vec4<u32>(pos), live);
    load_queries(lanes, lid);
    // Every workgroup of the kv head stores the same values, whichever write lands.
    // No query of the step needs the slot a ring overwrites (a ring holds the window
    // or more).
    if hi == pos + 1u {
        for (var e = 2u * lid; e < p.head_dim; e += 2u * BLOCK) {
            store_pair(0u, kvh * p.head_dim + e);
        }
        storageBarrier();
    }
    workgroupBarrier();
    let run = attend4(kvh, lo, hi, lanes, lid, true);
    let inside = own_pairs(lid);
    for (var i = 0u; i < 4u; i++) {
        if !live[i] {
            continue;
        }
        if lid == 0u {
            runs[run_stats(h[i], r)] = run.m[i];
            runs[run_stats(h[i], r) + 1u] = run.sum[i];
        }
        let at = run_values(h[i], r);
        let acc = run.acc[i];
        if inside.x {
            runs[at + 2u * lid] = acc.x;
            runs[at + 2u * lid + 1u] = acc.y;
        }
        if inside.y {
            runs[at + 2u * (lid + BLOCK)] = acc.z;
            runs[at + 2u * (lid + BLOCK) + 1u] = acc.w;
        }
    }
}

// A decode step: one workgroup per query head adds up its runs, each rescaled to the
// largest maximum.
@compute @workgroup_size(64)
fn attention_combine(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let h = workgroup_index(wid, nwg);
    if h >= p.n_head {
        return;
    }
    let pos = step.past;
    let keys = pos + 1u - first_key(pos);
    let count = (keys + run_len(keys) - 1u) / run_len(keys);
    var m = LOWEST;
    for (var r = 0u; r < count; r++) {
        m = max(m, runs[run_stats(h, r)]);
    }
    var sum = 0.0;
    var acc = vec4<f32>();
    let inside = own_pairs(lid);
    for (var r = 0u; r < count; r++) {
        let scale = exp(runs[run_stats(h, r)] - m);
        sum += scale * runs[run_stats(h, r) + 1u];
        let at = run_values(h, r);
        var values = vec4<f32>();
        if inside.x {
            values.x = runs[at + 2u * lid];
            values.y = runs[at + 2u * lid + 1u];
        }
        if inside.y {
            values.z = runs[at + 2u * (lid + BLOCK)];
            values.w = runs[at + 2u * (lid + BLOCK) + 1u];
        }
        acc += scale * values;
    }
    write_out(h * p.head_dim, acc / sum, lid);
}

// Stores values e, e + 1 of this step's key and value row t (at position P + t).
fn store_pair(t: u32, e: u32) {
    let k_at = t * p.k_stride + p.k_offset + e;
    let v_at = t * p.v_stride + p.v_offset + e;
    let slot = (cache_row(step.past + t) + e) / 2u;
    k_cache[slot] = stored_pair(vec2<f32>(k[k_at], k[k_at + 1u]));
    v_cache[slot] = stored_pair(vec2<f32>(v[v_at], v[v_at + 1u]));
}

// A ring cache's store: one invocation per pair of values of this step's key and
// value rows.
@compute @workgroup_size(256)
fn cache_store(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pair = item_index(wid, nwg, lid);
    let pairs = kv_row_len() / 2u;
    let t = pair / pairs;
    if t >= step.tokens {
        return;
    }
    let pos = step.past + t;
    // A ring keeps only the last `ring` positions; older rows of this step would
    // share their slots.
    if pos + p.ring < step.context {
        return;
    }
    store_pair(t, 2u * (pair % pairs));
}
