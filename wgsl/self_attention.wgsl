// The fused `attention` node: causal (optionally sliding-window) self-attention over
// the KV caches (layout in kv_cache.wgsl) and this step's own keys and values.
//
// A decode step (one token) splits each head's keys into at most MAX_RUNS runs of
// whole blocks: `attention_split` takes one run per workgroup, its softmax unnormalised
// (the largest score, the sum of exponentials, the weighted values), and
// `attention_combine` rescales the runs to their common maximum and adds them up (a
// context of ONE_RUN_BLOCKS blocks or fewer is one run, which writes the output itself,
// and the combine does not run). The workgroup whose run ends at the step's own
// position stores the step's key and value rows first, so that every key comes from
// the cache, with no branch between cache and input to serialise the loads.
//
// A longer step (`attention`: one workgroup per query head and tile of tokens) reads
// past positions from the caches and its own rows from its inputs, rounded as the
// cache holds them; a cache that holds every position then takes the step's rows in
// the same dispatch (they go to slots no query of the step reads from the cache), and a
// ring cache (a sliding window's, slot = position mod ring) in a `cache_store` dispatch
// after every query has read, so that it never loses a key a query of the step needs.

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
// The output row in runs of 8 values, one record a run (WRITE_RUNS).
@group(0) @binding(9) var<storage, read_write> out_runs: array<vec4<u32>>;

fn kv_row_len() -> u32 {
    return p.n_head_kv * p.head_dim;
}

// Whether the caches may be rings: a pipeline constant, which the executor sets for a
// decode step's attention (`attention_split`) to its caches' kind, so that the split
// over caches of every position takes no modulo. GPUs divide integers in tens of
// instructions, and each invocation finds the row of every key of its run: the modulo
// took a fifth of Mistral's decode attention on an H100.
override RING: bool = true;

// Where position j's row starts in a cache, in values.
fn cache_row(j: u32) -> u32 {
    if RING {
        return select(j, j % p.ring, p.ring != 0u) * kv_row_len();
    }
    return j * kv_row_len();
}

// A decode step reads every key and value from the caches (its workgroups store the
// step's own row first), so that no branch between cache and input keeps the loads
// from being in flight together.

// A decode step's head length: a pipeline constant (the executor specialises
// `attention_split` to the model's). Loops over a row do not unroll on their own, so
// each iteration below holds many loads written out, all in flight together; fixed
// trip counts let the driver drop the tails a head length does not need. Everything
// but the loads over a row reads `p.head_dim`, which is the same.
override HEAD_DIM: u32 = 128u;

// Scale-free score of the query (in q_row) with position j's key, head kvh: 64 values
// (32 loads) an iteration, then 16 at a time for a head of other than a multiple of 64.
fn key_dot(j: u32, kvh: u32) -> f32 {
    let base = (cache_row(j) + kvh * HEAD_DIM) / 2u;
    var acc = 0.0;
    var e = 0u;
    for (; e + 64u <= HEAD_DIM; e += 64u) {
        let w = base + e / 2u;
        acc += cached_dot16(w, e) + cached_dot16(w + 8u, e + 16u) + cached_dot16(w + 16u, e + 32u)
            + cached_dot16(w + 24u, e + 48u);
    }
    for (; e < HEAD_DIM; e += 16u) {
        acc += cached_dot16(base + e / 2u, e);
    }
    return acc;
}

// Query values e .. e + 16 with the 16 cached key values from pair w on.
fn cached_dot16(w: u32, e: u32) -> f32 {
    let a = vec4<f32>(cache_pair(k_cache[w]), cache_pair(k_cache[w + 1u]));
    let b = vec4<f32>(cache_pair(k_cache[w + 2u]), cache_pair(k_cache[w + 3u]));
    let c = vec4<f32>(cache_pair(k_cache[w + 4u]), cache_pair(k_cache[w + 5u]));
    let d = vec4<f32>(cache_pair(k_cache[w + 6u]), cache_pair(k_cache[w + 7u]));
    let q = e / 4u;
    return dot(q_row[q], a) + dot(q_row[q + 1u], b) + dot(q_row[q + 2u], c) + dot(q_row[q + 3u], d);
}

// How a decode workgroup shares a block's values: `value_lanes()` invocations a value
// row, each taking pair `lane` of it (and pair lane + 64 in a head of more than 128
// values), in `key_groups()` groups, group g taking keys g, g + groups, … of the
// block; the groups' sums are added at the end (`attend`). Invocations past the last
// group compute and add nothing.
fn value_lanes() -> u32 {
    return min(HEAD_DIM / 2u, BLOCK);
}

fn key_groups() -> u32 {
    let lanes = value_lanes();
    return select(1u, BLOCK / lanes, BLOCK % lanes == 0u);
}

// An invocation's values of position j's value row, head kvh: pairs lane and
// lane + 64, as (2·lane, 2·lane + 1, 2·lane + 128, 2·lane + 129); 0 past the head's end.
fn values4(j: u32, kvh: u32, lane: u32) -> vec4<f32> {
    let pairs = HEAD_DIM / 2u;
    let base = (cache_row(j) + kvh * HEAD_DIM) / 2u;
    let low = cache_pair(v_cache[base + lane]);
    if pairs <= BLOCK {
        return vec4<f32>(low, 0.0, 0.0);
    }
    // Clamped rather than branched around, so that both loads are in flight together.
    let high = cache_pair(v_cache[base + min(lane + BLOCK, pairs - 1u)]);
    return vec4<f32>(low, select(vec2<f32>(), high, lane + BLOCK < pairs));
}

// Keys a workgroup scores at once (one per invocation).
const BLOCK: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
// Below every score, finite so that exp(m − m′) is 0 rather than NaN.
const LOWEST: f32 = -3.0e38;
// The query, four values a vector.
var<workgroup> q_row: array<vec4<f32>, MAX_HEAD_DIM / 4u>;
var<workgroup> block_probs: array<f32, BLOCK>;
// The key groups' sums of values, added up at the end of `attend`.
var<workgroup> group_values: array<vec4<f32>, BLOCK>;

// The keys a query at `pos` sees start here.
fn first_key(pos: u32) -> u32 {
    if p.window == 0u {
        return 0u;
    }
    return pos + 1u - min(p.window, pos + 1u);
}

// Keys per run when a decode step's query sees `keys` keys: whole blocks, at most
// MAX_RUNS runs, and one run up to ONE_RUN_BLOCKS blocks, which then needs no combine
// (`attention_run_len` in src/runtime/gpu/executor.rs says the same).
const MAX_RUNS: u32 = 64u;
const ONE_RUN_BLOCKS: u32 = 2u;

fn run_len(keys: u32) -> u32 {
    let blocks = (keys + BLOCK - 1u) / BLOCK;
    if blocks <= ONE_RUN_BLOCKS {
        return BLOCK * blocks;
    }
    return BLOCK * ((blocks + MAX_RUNS - 1u) / MAX_RUNS);
}

// Query row t of head h into q_row (the caller's barrier publishes it).
fn load_query(h: u32, t: u32, lid: u32) {
    for (var i = lid; i < HEAD_DIM / 4u; i += BLOCK) {
        let at = t * p.q_stride + p.q_offset + h * HEAD_DIM + 4u * i;
        q_row[i] = vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]);
    }
}

// Lane `lane`'s values of 8 keys of the block at j0, each key_groups() after the last
// from jj, weighted by their probabilities. Keys past the run's last (probability 0)
// read its last key's values; indices past the block, reached only by invocations past
// the last group (whose sums are dropped), are clamped to its last key.
fn weighted8(j0: u32, jj: u32, last: u32, kvh: u32, lane: u32) -> vec4<f32> {
    let stride = key_groups();
    let k = min(vec4<u32>(jj) + vec4<u32>(0u, 1u, 2u, 3u) * stride, vec4<u32>(BLOCK - 1u));
    let l = min(vec4<u32>(jj) + vec4<u32>(4u, 5u, 6u, 7u) * stride, vec4<u32>(BLOCK - 1u));
    let at = min(vec4<u32>(j0) + k, vec4<u32>(last));
    let bt = min(vec4<u32>(j0) + l, vec4<u32>(last));
    let v0 = values4(at.x, kvh, lane);
    let v1 = values4(at.y, kvh, lane);
    let v2 = values4(at.z, kvh, lane);
    let v3 = values4(at.w, kvh, lane);
    let v4 = values4(bt.x, kvh, lane);
    let v5 = values4(bt.y, kvh, lane);
    let v6 = values4(bt.z, kvh, lane);
    let v7 = values4(bt.w, kvh, lane);
    return block_probs[k.x] * v0 + block_probs[k.y] * v1 + block_probs[k.z] * v2 + block_probs[k.w] * v3
        + block_probs[l.x] * v4 + block_probs[l.y] * v5 + block_probs[l.z] * v6 + block_probs[l.w] * v7;
}

// The softmax of one query over keys lo .. hi, unnormalised: the largest score `m`,
// the sum of exp(score − m), and, in the first key group's invocations, their pairs
// (see `values4`) of the values weighted by exp(score − m).
struct Run {
    m: f32,
    sum: f32,
    acc: vec4<f32>,
}

// Keys are taken BLOCK at a time (one per invocation); the softmax runs online: the
// running maximum rescales the sums and the accumulated values when it grows. Each
// invocation sums its own keys' exponentials, added up once at the end.
fn attend(kvh: u32, lo: u32, hi: u32, lid: u32) -> Run {
    let lanes = value_lanes();
    let groups = key_groups();
    let lane = lid % lanes;
    let group = lid / lanes;
    let last = hi - 1u;
    var m = LOWEST;
    var own_sum = 0.0;
    var acc = vec4<f32>();
    for (var j0 = lo; j0 < hi; j0 += BLOCK) {
        // Invocations past the last key score it again (branch-free loads) and drop it.
        let scored = j0 + lid < hi;
        let score = select(LOWEST, p.scale * key_dot(min(j0 + lid, last), kvh), scored);
        let m_new = max(m, workgroup_max(score, lid));
        let prob = select(0.0, exp(score - m_new), scored);
        let rescale = exp(m - m_new);
        own_sum = own_sum * rescale + prob;
        acc *= rescale;
        m = m_new;
        block_probs[lid] = prob;
        workgroupBarrier();
        // A group's keys, 32 an iteration (8 where it has 8, 16 where 16), up to the
        // run's last key.
        let keys = BLOCK / groups;
        for (var i = 0u; i < keys; i += 32u) {
            if j0 + i * groups > last {
                break;
            }
            acc += weighted8(j0, group + i * groups, last, kvh, lane);
            if keys > 8u {
                acc += weighted8(j0, group + (i + 8u) * groups, last, kvh, lane);
            }
            if keys > 16u {
                acc += weighted8(j0, group + (i + 16u) * groups, last, kvh, lane)
                    + weighted8(j0, group + (i + 24u) * groups, last, kvh, lane);
            }
        }
        // The next block's probabilities are stored after the barriers of its maximum,
        // which every invocation reaches only once done with these.
    }
    let sum = workgroup_sum(own_sum, lid);
    if groups > 1u {
        group_values[lid] = acc;
        workgroupBarrier();
        for (var g = 1u; g < groups; g++) {
            acc += group_values[lane + g * lanes];
        }
    }
    return Run(m, sum, acc);
}

// Where lane lid's four values (see `values4`: value pairs lid and lid + 64) lie
// in a head's row, and which of them lie inside the head: the one layout of `out` and
// of a run's values in `runs`.
fn own_values(lid: u32) -> vec4<u32> {
    return vec4<u32>(2u * lid, 2u * lid + 1u, 2u * (lid + BLOCK), 2u * (lid + BLOCK) + 1u);
}

fn own_inside(lid: u32) -> vec4<bool> {
    return own_values(lid) < vec4<u32>(p.head_dim);
}

// Writes an invocation's four values of a head's row starting at `row` in `out`.
fn write_out(row: u32, values: vec4<f32>, lid: u32) {
    let at = vec4<u32>(row) + own_values(lid);
    let inside = own_inside(lid);
    for (var i = 0u; i < 4u; i++) {
        if inside[i] {
            out[at[i]] = values[i];
        }
    }
}

// A decode step also stores its output rounded to 8 bits in `out_runs`, for the
// matmul that reads it (`run_record` in int8.wgsl): a pipeline constant, which the
// executor sets for the split and the combine where x is read in 8 bits.
override WRITE_RUNS: bool = false;

// A decode step's head h: its output row `values` (an invocation's four, as
// `write_out` takes them) also as runs of 8 rounded to 8 bits, with WRITE_RUNS.
// (Sized for the largest head: `attention_combine` is built with HEAD_DIM's default.)
var<workgroup> head_row: array<f32, 256>;

fn write_runs(h: u32, values: vec4<f32>, lid: u32) {
    if !WRITE_RUNS {
        return;
    }
    let at = own_values(lid);
    let inside = own_inside(lid);
    for (var i = 0u; i < 4u; i++) {
        if inside[i] {
            head_row[at[i]] = values[i];
        }
    }
    workgroupBarrier();
    if lid < p.head_dim / 8u {
        let e = 8u * lid;
        let lo = vec4<f32>(head_row[e], head_row[e + 1u], head_row[e + 2u], head_row[e + 3u]);
        let hi = vec4<f32>(head_row[e + 4u], head_row[e + 5u], head_row[e + 6u], head_row[e + 7u]);
        out_runs[(h * p.head_dim + e) / 8u] = run_record(lo, hi, dot(lo, lo) + dot(hi, hi));
    }
}

// A step of several tokens: one workgroup of 128 per query head and tile of
// `query_tile()` consecutive tokens, so that each key and value it loads serves every
// query of the tile. Keys come `tile_keys()` at a time, staged in workgroup memory as
// the cache holds them (pairs), first their keys, scored by every query (invocation
// lid takes scores lid, lid + 128, … of the tile, query-major), then in the same place
// their values, which invocation (qi, lane) accumulates for its query qi: value pairs
// lane, lane + L, … for L = 128 / query_tile() lanes a query. Rows in workgroup memory
// lie one element more than a row apart, so that rows read at once lie in different
// banks. Under 16 KiB of workgroup memory (WebGPU's default) with either cache type.
const Q_TILE_VALUES: u32 = 2080u;
// The keys' rows of a tile fill 4160 bytes; the lanes of a query read up to 8·L pairs
// of the last row whatever the head's length (at most 128 past its start), so that
// much more is there to be read (and never stored).
const KV_TILE_PAIRS: u32 = 4160u / PAIR_BYTES;
const MAX_TILE_KEYS: u32 = 16u;
var<workgroup> q_tile: array<f32, Q_TILE_VALUES>;
var<workgroup> kv_tile: array<CachePair, KV_TILE_PAIRS + 128u>;
var<workgroup> tile_scores: array<f32, 512>;

// Tokens of a workgroup's tile: the most, up to 32, whose rows of q fill 2048 values,
// a power of two (`query_tile` in src/runtime/gpu/executor.rs says the same). Each
// invocation then accumulates at most 16 values (8 pairs) of its query.
fn query_tile() -> u32 {
    let fit = min(32u, 2048u / p.head_dim);
    return 1u << (31u - countLeadingZeros(fit));
}

fn tile_keys() -> u32 {
    return min(MAX_TILE_KEYS, KV_TILE_PAIRS / (p.head_dim / 2u + 1u));
}

// Keys (values: `keys` false) j0 .. j0 + tile_keys() of kv head kvh into kv_tile,
// positions past `last` reading `last` instead (their scores are masked).
fn stage_kv(j0: u32, last: u32, kvh: u32, keys: bool, lid: u32) {
    let pairs = p.head_dim / 2u;
    for (var i = lid; i < tile_keys() * pairs; i += 128u) {
        let r = i / pairs;
        let e = 2u * (i % pairs);
        let j = min(j0 + r, last);
        var pair: CachePair;
        if j < step.past {
            let at = (cache_row(j) + kvh * p.head_dim + e) / 2u;
            if keys {
                pair = k_cache[at];
            } else {
                pair = v_cache[at];
            }
        } else {
            let t = j - step.past;
            if keys {
                let at = t * p.k_stride + p.k_offset + kvh * p.head_dim + e;
                pair = stored_pair(vec2<f32>(k[at], k[at + 1u]));
            } else {
                let at = t * p.v_stride + p.v_offset + kvh * p.head_dim + e;
                pair = stored_pair(vec2<f32>(v[at], v[at + 1u]));
            }
        }
        kv_tile[r * (pairs + 1u) + e / 2u] = pair;
    }
}

// Pairs w and w + L of row r of kv_tile, as one vector.
fn tile_pairs(r: u32, w: u32, lanes: u32) -> vec4<f32> {
    let at = r * (p.head_dim / 2u + 1u) + w;
    return vec4<f32>(cache_pair(kv_tile[at]), cache_pair(kv_tile[at + lanes]));
}

@compute @workgroup_size(128)
fn attention(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let unit = workgroup_index(wid, nwg);
    let h = unit % p.n_head;
    let q_tokens = query_tile();
    let t0 = (unit / p.n_head) * q_tokens;
    if t0 >= step.tokens {
        return;
    }
    let kvh = h / (p.n_head / p.n_head_kv);
    let tokens = min(q_tokens, step.tokens - t0);
    let q_len = p.head_dim + 1u;
    for (var i = lid; i < q_tokens * p.head_dim; i += 128u) {
        let qi = i / p.head_dim;
        let e = i % p.head_dim;
        let t = t0 + min(qi, tokens - 1u);
        q_tile[qi * q_len + e] = q[t * p.q_stride + p.q_offset + h * p.head_dim + e];
    }
    let keys_per_tile = tile_keys();
    let pairs = p.head_dim / 2u;
    let kv_len = pairs + 1u;
    // This invocation's query as accumulator (queries past the step's last compute
    // and store nothing), and its lane: pairs lane + L·i of the query's row.
    let lanes = 128u / q_tokens;
    let qi = lid / lanes;
    let lane = lid % lanes;
    let own = qi < tokens;
    // The keys any of the tile's queries sees.
    let lo = first_key(step.past + t0);
    let hi = step.past + t0 + tokens;
    var m = LOWEST;
    var sum = 0.0;
    var o0 = vec4<f32>();
    var o1 = vec4<f32>();
    var o2 = vec4<f32>();
    var o3 = vec4<f32>();
    for (var j0 = lo; j0 < hi; j0 += keys_per_tile) {
        stage_kv(j0, hi - 1u, kvh, true, lid);
        workgroupBarrier();
        for (var s = lid; s < q_tokens * keys_per_tile; s += 128u) {
            let sq = s / keys_per_tile;
            let kj = s % keys_per_tile;
            var dot_qk = 0.0;
            for (var w = 0u; w < pairs; w++) {
                let key = cache_pair(kv_tile[kj * kv_len + w]);
                dot_qk += q_tile[sq * q_len + 2u * w] * key.x + q_tile[sq * q_len + 2u * w + 1u] * key.y;
            }
            let pos = step.past + t0 + sq;
            let j = j0 + kj;
            let seen = sq < tokens && j >= first_key(pos) && j <= pos;
            tile_scores[sq * MAX_TILE_KEYS + kj] = select(LOWEST, p.scale * dot_qk, seen);
        }
        workgroupBarrier();
        stage_kv(j0, hi - 1u, kvh, false, lid);
        workgroupBarrier();
        var m_new = m;
        for (var kj = 0u; kj < keys_per_tile; kj++) {
            m_new = max(m_new, tile_scores[qi * MAX_TILE_KEYS + kj]);
        }
        let rescale = exp(m - m_new);
        sum *= rescale;
        o0 *= rescale;
        o1 *= rescale;
        o2 *= rescale;
        o3 *= rescale;
        for (var kj = 0u; kj < keys_per_tile; kj++) {
            let score = tile_scores[qi * MAX_TILE_KEYS + kj];
            // A masked key weighs nothing, also while every key so far is masked.
            let prob = select(0.0, exp(score - m_new), score > LOWEST);
            sum += prob;
            // Pairs past the row's end read the next row (or nothing) and are never stored.
            o0 += prob * tile_pairs(kj, lane, lanes);
            o1 += prob * tile_pairs(kj, lane + 2u * lanes, lanes);
            o2 += prob * tile_pairs(kj, lane + 4u * lanes, lanes);
            o3 += prob * tile_pairs(kj, lane + 6u * lanes, lanes);
        }
        m = m_new;
        workgroupBarrier();
    }
    if own {
        let row = (t0 + qi) * p.n_head * p.head_dim + h * p.head_dim;
        let values = array<vec4<f32>, 4>(o0, o1, o2, o3);
        // Vector g holds pairs lane + 2g·L and lane + (2g + 1)·L.
        for (var i = 0u; i < 8u; i++) {
            let w = lane + i * lanes;
            if w < pairs {
                let v = values[i / 2u];
                let pair = select(v.xy, v.zw, i % 2u == 1u);
                out[row + 2u * w] = pair.x / sum;
                out[row + 2u * w + 1u] = pair.y / sum;
            }
        }
    }
    // The first query head of each kv head stores the kv head's rows (a ring's wait
    // for `cache_store`).
    if p.ring == 0u && h % (p.n_head / p.n_head_kv) == 0u {
        for (var i = lid; i < tokens * pairs; i += 128u) {
            store_pair(t0 + i / pairs, kvh * p.head_dim + 2u * (i % pairs));
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

// A decode step: one workgroup per query head and run of keys.
@compute @workgroup_size(64)
fn attention_split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let unit = workgroup_index(wid, nwg);
    let h = unit % p.n_head;
    let r = unit / p.n_head;
    let pos = step.past;
    let first = first_key(pos);
    let len = run_len(pos + 1u - first);
    let lo = first + r * len;
    if lo > pos {
        return;
    }
    let hi = min(lo + len, pos + 1u);
    let kvh = h / (p.n_head / p.n_head_kv);
    load_query(h, 0u, lid);
    // Every query head of the kv head stores the same values, whichever write lands.
    // No query of the step needs the slot a ring overwrites (a ring holds the window
    // or more).
    if hi == pos + 1u {
        for (var e = 2u * lid; e < p.head_dim; e += 2u * BLOCK) {
            store_pair(0u, kvh * p.head_dim + e);
        }
        storageBarrier();
    }
    workgroupBarrier();
    let run = attend(kvh, lo, hi, lid);
    // The first key group holds the values (see `attend`), pair lid a lane; the lanes
    // past it own no values (`own_inside`).
    // The only run: the output itself (the combine does not run).
    if len >= pos + 1u - first {
        write_out(h * p.head_dim, run.acc / run.sum, lid);
        write_runs(h, run.acc / run.sum, lid);
        return;
    }
    if lid >= value_lanes() {
        return;
    }
    if lid == 0u {
        runs[run_stats(h, r)] = run.m;
        runs[run_stats(h, r) + 1u] = run.sum;
    }
    let at = vec4<u32>(run_values(h, r)) + own_values(lid);
    let inside = own_inside(lid);
    for (var i = 0u; i < 4u; i++) {
        if inside[i] {
            runs[at[i]] = run.acc[i];
        }
    }
}

// A decode step: one workgroup per query head adds up its runs, each rescaled to the
// largest maximum. Invocation r reads run r's maximum and sum (MAX_RUNS is the
// workgroup's size), so that no loop waits on one load after another; the runs' values
// then come four runs at a time, their loads in flight together.
var<workgroup> run_scales: array<f32, MAX_RUNS>;

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
    let own = lid < count;
    let stats = run_stats(h, min(lid, count - 1u));
    let own_m = select(LOWEST, runs[stats], own);
    let m = workgroup_max(own_m, lid);
    let scale = select(0.0, exp(own_m - m), own);
    run_scales[lid] = scale;
    let sum = workgroup_sum(scale * runs[stats + 1u], lid);
    // Values past the head's end read its first instead and are never stored; runs
    // past the last read the last, scaled by 0.
    let inside = own_inside(lid);
    let offsets = select(vec4<u32>(), own_values(lid), inside);
    var acc = vec4<f32>();
    for (var r = 0u; r < count; r += 4u) {
        let last = count - 1u;
        acc += run_scales[r] * run_values4(h, r, offsets)
            + run_scales[min(r + 1u, MAX_RUNS - 1u)] * run_values4(h, min(r + 1u, last), offsets)
            + run_scales[min(r + 2u, MAX_RUNS - 1u)] * run_values4(h, min(r + 2u, last), offsets)
            + run_scales[min(r + 3u, MAX_RUNS - 1u)] * run_values4(h, min(r + 3u, last), offsets);
    }
    write_out(h * p.head_dim, acc / sum, lid);
    write_runs(h, acc / sum, lid);
}

// Head h's run r's values at `offsets` in its row.
fn run_values4(h: u32, r: u32, offsets: vec4<u32>) -> vec4<f32> {
    let at = vec4<u32>(run_values(h, r)) + offsets;
    return vec4<f32>(runs[at.x], runs[at.y], runs[at.z], runs[at.w]);
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
