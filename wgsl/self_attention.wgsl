// The fused `attention` node: causal (optionally sliding-window) self-attention over
// the KV caches (layout in kv_cache.wgsl) and this step's own keys and values.
//
// A decode step (one token) splits each head's keys into at most MAX_RUNS runs of
// whole blocks: `attention_split` takes one run per workgroup, its softmax unnormalised
// (the largest score, the sum of exponentials, the weighted values), and
// `attention_combine` rescales the runs to their common maximum and adds them up (a
// context of ONE_RUN_BLOCKS blocks or fewer is one run, which writes the output itself,
// and the combine does not run). Each workgroup stages the step's own key and value
// rows, rounded as the cache holds them, while its first block's loads are in flight,
// and takes the key and value at the step's position from there (a select, not a
// branch); the workgroup whose run ends there also stores them in the caches.
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

// A decode step's head length: a pipeline constant (the executor specialises
// `attention_split` to the model's), so that the loops over a row have fixed trip
// counts and the driver drops what a head length does not need. Everything but the
// split's loads over a row reads `p.head_dim`, which is the same.
override HEAD_DIM: u32 = 128u;

// A decode workgroup (`attention_split`) takes its run's keys BLOCK at a time with
// DECODE_GROUP invocations: KEY_LANES of them score a key together, then
// `value_lanes()` of them weigh a value row together, in `key_groups()` groups, group
// g taking keys g, g + groups, … of the block. A block's loads, keys and values (of a
// head of up to 128 values), are one round in flight together: a round of loads
// waits about a microsecond, which is most of a short context's attention.
const DECODE_GROUP: u32 = 256u;
// Keys a workgroup scores at once.
const BLOCK: u32 = 64u;
const KEY_LANES: u32 = DECODE_GROUP / BLOCK;
const MAX_HEAD_DIM: u32 = 256u;
// Below every score, finite so that exp(m − m′) is 0 rather than NaN.
const LOWEST: f32 = -3.0e38;

fn value_lanes() -> u32 {
    return HEAD_DIM / 2u;
}

fn key_groups() -> u32 {
    return DECODE_GROUP / value_lanes();
}

// The step's query, and its own key and value rows as the cache holds them (pairs):
// the key at the step's position is read from here rather than from the cache, so
// that no barrier waits for the row's stores to the caches. Stored, as in the cache,
// so that the rounding is the cache's: a driver may fold a rounding to f16 and back
// within one invocation into nothing.
var<workgroup> own_q: array<f32, MAX_HEAD_DIM>;
var<workgroup> own_k: array<CachePair, MAX_HEAD_DIM / 2u>;
var<workgroup> own_v: array<CachePair, MAX_HEAD_DIM / 2u>;
// Each invocation's part of its key's score.
var<workgroup> score_parts: array<f32, DECODE_GROUP>;
var<workgroup> block_probs: array<f32, BLOCK>;
// The key groups' sums of values, added up at the end of `attend`.
var<workgroup> group_values: array<vec2<f32>, DECODE_GROUP>;

// Head h's query and kv head kvh's key and value rows of the step into workgroup
// memory (`attend`'s barrier publishes them), the key and value also into the
// caches where `stores` (every query head of the kv head stores the same values,
// whichever write lands; no query of the step needs the slot a ring overwrites, as a
// ring holds the window or more).
fn stage_own_rows(h: u32, kvh: u32, stores: bool, lid: u32) {
    if lid >= HEAD_DIM / 2u {
        return;
    }
    let e = 2u * lid;
    let q_at = p.q_offset + h * HEAD_DIM + e;
    let k_at = p.k_offset + kvh * HEAD_DIM + e;
    let v_at = p.v_offset + kvh * HEAD_DIM + e;
    let key = stored_pair(vec2<f32>(k[k_at], k[k_at + 1u]));
    let value = stored_pair(vec2<f32>(v[v_at], v[v_at + 1u]));
    own_q[e] = q[q_at];
    own_q[e + 1u] = q[q_at + 1u];
    own_k[lid] = key;
    own_v[lid] = value;
    if stores {
        let slot = (cache_row(step.past) + kvh * HEAD_DIM + e) / 2u;
        k_cache[slot] = key;
        v_cache[slot] = value;
    }
}

// Where position j's row of kv head kvh starts in a cache, in pairs.
fn head_pairs(j: u32, kvh: u32) -> u32 {
    return (cache_row(j) + kvh * HEAD_DIM) / 2u;
}

// Pairs of a key's row each of its KEY_LANES invocations takes: at most MAX_LANE_PAIRS
// (heads of 256), `lane_pairs()` for this head (8 for heads of 64, 16 for 128).
const MAX_LANE_PAIRS: u32 = MAX_HEAD_DIM / 2u / KEY_LANES;

fn lane_pairs() -> u32 {
    return (HEAD_DIM / 2u + KEY_LANES - 1u) / KEY_LANES;
}

// Lane `part`'s pairs of position j's key row of kv head kvh, as the cache holds them:
// pairs part, part + KEY_LANES, … (so that a key's invocations load neighbouring words
// together); past the head's end, its last pair.
fn key_pairs(j: u32, kvh: u32, part: u32) -> array<CachePair, MAX_LANE_PAIRS> {
    let base = head_pairs(j, kvh);
    var pairs: array<CachePair, MAX_LANE_PAIRS>;
    for (var i = 0u; i < lane_pairs(); i++) {
        pairs[i] = k_cache[base + min(part + i * KEY_LANES, HEAD_DIM / 2u - 1u)];
    }
    return pairs;
}

// Part `part` of the scale-free score of position j's key from its `pairs`, the step's
// own key's where j is its position; 0 for pairs past the head's end.
fn key_part(pairs: array<CachePair, MAX_LANE_PAIRS>, j: u32, part: u32) -> f32 {
    let own = j == step.past;
    var acc = 0.0;
    for (var i = 0u; i < lane_pairs(); i++) {
        let w = part + i * KEY_LANES;
        let at = min(w, HEAD_DIM / 2u - 1u);
        let key = cache_pair(select(pairs[i], own_k[at], own));
        acc += select(0.0, dot(key, vec2<f32>(own_q[2u * at], own_q[2u * at + 1u])), w < HEAD_DIM / 2u);
    }
    return acc;
}

// Value loads of a row an invocation has in flight together: 16, or 8 for heads of up
// to 64 values, whose key groups take no more keys of a block.
fn unrolled() -> u32 {
    return select(16u, 8u, HEAD_DIM <= 64u);
}

// Pair `lane` of the value row of key kb of the block at j0 (kv head kvh), as the
// cache holds it; keys past the run's last read its last key's values.
fn cached_value(j0: u32, kb: u32, last: u32, kvh: u32, lane: u32) -> CachePair {
    return v_cache[head_pairs(min(j0 + kb, last), kvh) + lane];
}

// Key kb's probability: 0 for keys past the block (and past the run's last, as
// `attend` stores them).
fn block_prob(kb: u32) -> f32 {
    return select(0.0, block_probs[min(kb, BLOCK - 1u)], kb < BLOCK);
}

// What `cached_value` loaded for key kb, weighed by its probability: the step's own
// value where kb is at its position.
fn weighted_value(cached: CachePair, j0: u32, kb: u32, last: u32, lane: u32) -> vec2<f32> {
    let own = min(j0 + kb, last) == step.past;
    return block_prob(kb) * cache_pair(select(cached, own_v[lane], own));
}

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

// The softmax of one query over keys lo .. hi, unnormalised: the largest score `m`,
// the sum of exp(score − m), and, in the first key group's invocations (pair `lid` of
// the row), the values weighted by exp(score − m).
struct Run {
    m: f32,
    sum: f32,
    acc: vec2<f32>,
}

// Key kb's weighted value, loaded after the block's scores (a longer head's keys past
// the first `unrolled()` of its group).
fn later_value(j0: u32, kb: u32, last: u32, kvh: u32, lane: u32) -> vec2<f32> {
    return weighted_value(cached_value(j0, kb, last, kvh, lane), j0, kb, last, lane);
}

// Keys are taken BLOCK at a time; the softmax runs online: the running maximum
// rescales the sums and the accumulated values when it grows. Invocation lid < BLOCK
// sums the exponentials of key lid of each block, added up once at the end. The step's
// own rows (query head h, kv head kvh; stored in the caches where `stores`) are staged
// after the first block's loads are issued, so that theirs and the block's are one
// round.
fn attend(h: u32, kvh: u32, lo: u32, hi: u32, stores: bool, lid: u32) -> Run {
    let lanes = value_lanes();
    let groups = key_groups();
    let lane = lid % lanes;
    let group = lid / lanes;
    let last = hi - 1u;
    var m = LOWEST;
    var own_sum = 0.0;
    var acc = vec2<f32>();
    for (var j0 = lo; j0 < hi; j0 += BLOCK) {
        // The group's first `unrolled()` values (all of them for a head of up to 128),
        // loaded in the keys' round: they wait on nothing the scores do.
        var early: array<CachePair, 16>;
        for (var n = 0u; n < unrolled(); n++) {
            early[n] = cached_value(j0, group + n * groups, last, kvh, lane);
        }
        // Keys past the run's last are scored again (branch-free loads) and dropped.
        let j = min(j0 + lid / KEY_LANES, last);
        let pairs = key_pairs(j, kvh, lid % KEY_LANES);
        // The step's own rows join the first block's round of loads.
        if j0 == lo {
            stage_own_rows(h, kvh, stores, lid);
            workgroupBarrier();
        }
        score_parts[lid] = key_part(pairs, j, lid % KEY_LANES);
        workgroupBarrier();
        let key = lid % BLOCK;
        var dot_qk = 0.0;
        for (var i = 0u; i < KEY_LANES; i++) {
            dot_qk += score_parts[KEY_LANES * key + i];
        }
        let scored = lid < BLOCK && j0 + key < hi;
        let score = select(LOWEST, p.scale * dot_qk, scored);
        let m_new = max(m, workgroup_max(score, lid));
        let prob = select(0.0, exp(score - m_new), scored);
        let rescale = exp(m - m_new);
        own_sum = own_sum * rescale + prob;
        acc *= rescale;
        m = m_new;
        if lid < BLOCK {
            block_probs[lid] = prob;
        }
        workgroupBarrier();
        // Invocations past the last group add nothing.
        if group < groups {
            var sum = vec2<f32>();
            for (var n = 0u; n < unrolled(); n++) {
                sum += weighted_value(early[n], j0, group + n * groups, last, lane);
            }
            // A longer head's further keys, `unrolled()` an iteration (their loads in
            // flight together), up to the run's last key.
            for (var i = unrolled(); i < BLOCK / groups && j0 + group + i * groups <= last; i += unrolled()) {
                for (var n = 0u; n < unrolled(); n += 4u) {
                    let kb = group + (i + n) * groups;
                    sum += later_value(j0, kb, last, kvh, lane) + later_value(j0, kb + groups, last, kvh, lane)
                        + later_value(j0, kb + 2u * groups, last, kvh, lane)
                        + later_value(j0, kb + 3u * groups, last, kvh, lane);
                }
            }
            acc += sum;
        }
        // The next block's parts and probabilities are stored after the barriers of
        // its maximum, which every invocation reaches only once done with these.
    }
    let sum = workgroup_sum(own_sum, lid);
    group_values[lid] = acc;
    workgroupBarrier();
    if lid < lanes {
        for (var g = 1u; g < groups; g++) {
            acc += group_values[lane + g * lanes];
        }
    }
    return Run(m, sum, acc);
}

// Where the combine's invocation lid's four values (value pairs lid and lid +
// MAX_RUNS) lie in a head's row, and which of them lie inside the head.
fn own_values(lid: u32) -> vec4<u32> {
    return vec4<u32>(2u * lid, 2u * lid + 1u, 2u * (lid + MAX_RUNS), 2u * (lid + MAX_RUNS) + 1u);
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

// A decode step's head h: its output row, which the workgroup has put in head_row,
// also as runs of 8 rounded to 8 bits, with WRITE_RUNS. (Sized for the largest head:
// `attention_combine` is built with HEAD_DIM's default.)
var<workgroup> head_row: array<f32, MAX_HEAD_DIM>;

fn store_runs(h: u32, lid: u32) {
    if !WRITE_RUNS {
        return;
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
@compute @workgroup_size(DECODE_GROUP)
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
    let run = attend(h, kvh, lo, hi, hi == pos + 1u, lid);
    // The first key group holds the values (see `attend`), pair lid a lane.
    let lanes = value_lanes();
    // The only run: the output itself (the combine does not run).
    if len >= pos + 1u - first {
        let values = run.acc / run.sum;
        if lid < lanes {
            let e = 2u * lid;
            out[h * HEAD_DIM + e] = values.x;
            out[h * HEAD_DIM + e + 1u] = values.y;
            if WRITE_RUNS {
                head_row[e] = values.x;
                head_row[e + 1u] = values.y;
            }
        }
        store_runs(h, lid);
        return;
    }
    if lid >= lanes {
        return;
    }
    if lid == 0u {
        runs[run_stats(h, r)] = run.m;
        runs[run_stats(h, r) + 1u] = run.sum;
    }
    let at = run_values(h, r) + 2u * lid;
    runs[at] = run.acc.x;
    runs[at + 1u] = run.acc.y;
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
    if WRITE_RUNS {
        let values = acc / sum;
        for (var i = 0u; i < 4u; i++) {
            if inside[i] {
                head_row[own_values(lid)[i]] = values[i];
            }
        }
    }
    store_runs(h, lid);
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
