// The k largest values of the last row of `[rows, n]` logits with their indices, in
// the sampler's order (value descending, then index ascending), so that sampling reads
// back k pairs and greedy decoding (k = 1) reads back 4 bytes. k is the step's `top_k`.
//
// Two dispatches. `top_k_chunks`: each workgroup takes the k best of its chunk of
// CHUNK values. `top_k_merge`: one workgroup takes the k best of those. Each finds its
// k in k rounds; a round takes the best candidate that comes after the previous
// round's winner in the order, so no candidate is taken twice.

struct Params {
    n: u32,
    // Rows of the logits: 0 means T.
    fixed_rows: u32,
    // Workgroups of `top_k_chunks`: ceil(n / CHUNK).
    chunks: u32,
}

struct Candidate {
    index: u32,
    value: f32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
// TOP_K_MAX slots per chunk.
@group(0) @binding(3) var<storage, read_write> chunk_best: array<Candidate>;
@group(0) @binding(4) var<storage, read_write> best: array<Candidate>;

const WIDTH: u32 = 256u;
const PER_INVOCATION: u32 = 4u;
const CHUNK: u32 = WIDTH * PER_INVOCATION;
// The largest k (`TOP_K_MAX` in src/runtime/gpu/top_k.rs).
const TOP_K_MAX: u32 = 128u;
// No candidate: what a round yields once its values are all taken.
const NONE: u32 = 0xffffffffu;

// Whether `a` comes before `b`: a candidate before none, a larger value first, the
// smaller index first among equal values.
fn before(a: Candidate, b: Candidate) -> bool {
    return a.index != NONE
        && (b.index == NONE || a.value > b.value || (a.value == b.value && a.index < b.index));
}

var<workgroup> winners: array<Candidate, WIDTH>;

// The first in the order of every invocation's `mine`, seen by all.
fn workgroup_first(mine: Candidate, lid: u32) -> Candidate {
    winners[lid] = mine;
    workgroupBarrier();
    for (var stride = WIDTH / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride && before(winners[lid + stride], winners[lid]) {
            winners[lid] = winners[lid + stride];
        }
        workgroupBarrier();
    }
    let first = winners[0];
    workgroupBarrier();
    return first;
}

// Whether `c` may still be taken after `previous` (round > 0).
fn still_open(c: Candidate, previous: Candidate, round: u32) -> bool {
    return round == 0u || before(previous, c);
}

@compute @workgroup_size(256)
fn top_k_chunks(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let chunk = workgroup_index(wid, nwg);
    if chunk >= p.chunks {
        return;
    }
    let row = (row_count(p.fixed_rows) - 1u) * p.n;
    let k = min(step.top_k, TOP_K_MAX);
    var mine: array<Candidate, PER_INVOCATION>;
    for (var e = 0u; e < PER_INVOCATION; e++) {
        let i = chunk * CHUNK + e * WIDTH + lid;
        mine[e] = Candidate(NONE, 0.0);
        if i < p.n {
            mine[e] = Candidate(i, logits[row + i]);
        }
    }
    var previous = Candidate(NONE, 0.0);
    for (var round = 0u; round < k; round++) {
        var first = Candidate(NONE, 0.0);
        for (var e = 0u; e < PER_INVOCATION; e++) {
            if still_open(mine[e], previous, round) && before(mine[e], first) {
                first = mine[e];
            }
        }
        previous = workgroup_first(first, lid);
        if lid == 0u {
            chunk_best[chunk * TOP_K_MAX + round] = previous;
        }
    }
}

@compute @workgroup_size(256)
fn top_k_merge(@builtin(local_invocation_index) lid: u32) {
    let k = min(step.top_k, TOP_K_MAX);
    let candidates = p.chunks * k;
    var previous = Candidate(NONE, 0.0);
    for (var round = 0u; round < k; round++) {
        var first = Candidate(NONE, 0.0);
        for (var j = lid; j < candidates; j += WIDTH) {
            let c = chunk_best[(j / k) * TOP_K_MAX + j % k];
            if still_open(c, previous, round) && before(c, first) {
                first = c;
            }
        }
        previous = workgroup_first(first, lid);
        if lid == 0u {
            best[round] = previous;
        }
    }
}
