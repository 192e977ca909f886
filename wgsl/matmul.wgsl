// The matmul of a `linear` node: out[t, c] = x[t, :] · W[r, :] with W in its GGUF
// type, dequantised in registers, and a residual added as it stores. Weights of one
// type read by one linear lie side by side in one buffer; a buffer split by rows is one
// dispatch per part, each writing its columns `first_row ..` of the output. A linear's
// norm prologue runs before as rms_norm_mul in longer steps, and its epilogue after;
// the decode kernel applies the prologue itself (`prologue`), and a rotation or the
// gated activation as it stores (its FOLD).

struct Params {
    // Rows of W in this dispatch, and where they go in the output row.
    rows: u32,
    first_row: u32,
    cols: u32,
    // Output row length (the row stride of `out` and `residual`).
    out_len: u32,
    // Rows of x: 0 means T.
    fixed_tokens: u32,
    // x is a view: value k of row t is x[x_row(t) · x_stride + x_offset + k].
    x_offset: u32,
    x_stride: u32,
    // 1: the view is the last row (T − 1) of its source.
    x_last_row: u32,
    // 1: add residual[t, c].
    residual: u32,
    // 1 (decode only): x_vec4 holds the rows before the linear's RMS-norm prologue,
    // which this kernel applies itself: x times `norm_weight4`, the sums times the
    // inverse RMS of x (the prologue's own dispatch then runs only for longer steps).
    prologue: u32,
    eps: f32,
    // Decode: each group of four rows is b, b + 1, b + s and b + s + 1 for this span s
    // (2: four rows in a row), so that the rows an epilogue pairs are computed together.
    pair_span: u32,
    // FOLD_ROPE: columns rope_start .. rope_end are heads of rope_head_dim values whose
    // first rope_n_rot turn, pairing adjacent values (rope_mode 0) or halves (1), by the
    // inverse frequencies in `rope_table`. FOLD_GATED: rope_mode is the activation (0
    // silu, 1 gelu_tanh).
    rope_start: u32,
    rope_end: u32,
    rope_head_dim: u32,
    rope_n_rot: u32,
    rope_mode: u32,
    rope_freq_scale: f32,
}

// The epilogue the decode kernel applies as it stores (its FOLD).
const FOLD_NONE: u32 = 0u;
const FOLD_ROPE: u32 = 1u;
// act(rows b, b + 1) · rows b + s, b + s + 1 (gate and up side by side, s = gate rows),
// stored at b, b + 1.
const FOLD_GATED: u32 = 2u;

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// x again, four values a load (views start and stride at multiples of 32 values).
@group(0) @binding(6) var<storage, read> x_vec4: array<vec4<f32>>;
// The weights again, 16 bytes a load (buffers are padded to 16 bytes), for the decode
// dot products whose rows are whole vec4 words.
@group(0) @binding(7) var<storage, read> weights4: array<vec4<u32>>;
// The prologue's norm weight, four values a load.
@group(0) @binding(8) var<storage, read> norm_weight4: array<vec4<f32>>;
// FOLD_ROPE's inverse frequencies (rotary.wgsl).
@group(0) @binding(9) var<storage, read> rope_table: array<f32>;
// (Binding 10 is the tensor-core kernel's, matmul_coop.wgsl.)
// x rounded to 8 bits by the kernel that made it (READ_RUNS), and this kernel's output
// rounded so for the next (WRITE_RUNS): a record a run of 8 values, column c in run
// c / 8, holding the run's two words and the bits of its scale and of the sum of its
// values' squares (before the reader's norm weight, which the rounded values include).
@group(0) @binding(11) var<storage, read> x_runs: array<vec4<u32>>;
@group(0) @binding(12) var<storage, read_write> out_runs: array<vec4<u32>>;
// The reader's norm weight, four values a load, where its kernel folds a norm
// prologue (RUNS_NORMED).
@group(0) @binding(13) var<storage, read> runs_norm4: array<vec4<f32>>;

fn x_at(t: u32, k: u32) -> f32 {
    let row = select(t, step.tokens - 1u, p.x_last_row == 1u);
    return x[row * p.x_stride + p.x_offset + k];
}

// Writes output value (t, c), the residual added, and returns what it wrote.
fn store(t: u32, c: u32, value: f32) -> f32 {
    let at = t * p.out_len + p.first_row + c;
    var v = value;
    if p.residual == 1u {
        v += residual[at];
    }
    out[at] = v;
    return v;
}

// Values of x's (one) row in the runs of 8 columns starting at `starts`.
fn x32(starts: vec4<u32>) -> X32 {
    let row = select(0u, step.tokens - 1u, p.x_last_row == 1u);
    let at = (vec4<u32>(row * p.x_stride + p.x_offset) + starts) / 4u;
    var x: X32;
    x.a = x_vec4[at.x];
    x.b = x_vec4[at.x + 1u];
    x.c = x_vec4[at.y];
    x.d = x_vec4[at.y + 1u];
    x.e = x_vec4[at.z];
    x.f = x_vec4[at.z + 1u];
    x.g = x_vec4[at.w];
    x.h = x_vec4[at.w + 1u];
    // Branch-free, so that the norm weight's loads are in flight with the weights':
    // without a folded prologue they read past the end of the 16-byte placeholder
    // binding (bounds-checked, as every storage read in WGSL) and are not used.
    x.squares = dot(x.a, x.a) + dot(x.b, x.b) + dot(x.c, x.c) + dot(x.d, x.d) + dot(x.e, x.e)
        + dot(x.f, x.f) + dot(x.g, x.g) + dot(x.h, x.h);
    let w = starts / 4u;
    let folded = p.prologue == 1u;
    x.a = select(x.a, x.a * norm_weight4[w.x], folded);
    x.b = select(x.b, x.b * norm_weight4[w.x + 1u], folded);
    x.c = select(x.c, x.c * norm_weight4[w.y], folded);
    x.d = select(x.d, x.d * norm_weight4[w.y + 1u], folded);
    x.e = select(x.e, x.e * norm_weight4[w.z], folded);
    x.f = select(x.f, x.f * norm_weight4[w.z + 1u], folded);
    x.g = select(x.g, x.g * norm_weight4[w.w], folded);
    x.h = select(x.h, x.h * norm_weight4[w.w + 1u], folded);
    x.low_sum = dot(x.a + x.b + x.c + x.d, vec4<f32>(1.0));
    x.high_sum = dot(x.e + x.f + x.g + x.h, vec4<f32>(1.0));
    return x;
}

// The runs of x at `starts` as the kernel that made x rounded them (`x_runs`), and
// the sum of their squares.
struct StoredRuns {
    q: XQ8,
    squares: f32,
}

fn stored_runs(starts: vec4<u32>) -> StoredRuns {
    let at = starts / 8u;
    let r0 = x_runs[at.x];
    let r1 = x_runs[at.y];
    let r2 = x_runs[at.z];
    let r3 = x_runs[at.w];
    var q: XQ8;
    q.lo = vec4<u32>(r0.x, r0.y, r1.x, r1.y);
    q.hi = vec4<u32>(r2.x, r2.y, r3.x, r3.y);
    q.scales = bitcast<vec4<f32>>(vec4<u32>(r0.z, r1.z, r2.z, r3.z));
    q.sums = rounded_sums(q);
    let squares = bitcast<vec4<f32>>(vec4<u32>(r0.w, r1.w, r2.w, r3.w));
    return StoredRuns(q, dot(squares, vec4<f32>(1.0)));
}

// The record of `out_runs` for the run of 8 outputs `lo`, `hi` from `column`, times
// the reader's norm weight where it folds a norm (as its `x32` multiplies them).
fn output_run(lo: vec4<f32>, hi: vec4<f32>, column: u32) -> vec4<u32> {
    let squares = dot(lo, lo) + dot(hi, hi);
    if RUNS_NORMED {
        let w = column / 4u;
        return run_record(lo * runs_norm4[w], hi * runs_norm4[w + 1u], squares);
    }
    return run_record(lo, hi, squares);
}

// Each run's Σ (w − bias) · x for 8 words of weights as unsigned bytes, in the runs'
// order (two words a run): the f32 twin of `run_dots`.
fn run_sums(w_lo: vec4<u32>, w_hi: vec4<u32>, bias: f32, x: X32) -> vec4<f32> {
    return vec4<f32>(
        dot(bytes4(w_lo.x, bias), x.a) + dot(bytes4(w_lo.y, bias), x.b),
        dot(bytes4(w_lo.z, bias), x.c) + dot(bytes4(w_lo.w, bias), x.d),
        dot(bytes4(w_hi.x, bias), x.e) + dot(bytes4(w_hi.y, bias), x.f),
        dot(bytes4(w_hi.z, bias), x.g) + dot(bytes4(w_hi.w, bias), x.h),
    );
}

fn low_nibbles(q: vec4<u32>) -> vec4<u32> {
    return q & vec4<u32>(0x0f0f0f0fu);
}

fn high_nibbles(q: vec4<u32>) -> vec4<u32> {
    return (q >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu);
}

// The four rows of the decode kernel's group `w` (see `pair_span`).
fn quad_rows(w: u32) -> vec4<u32> {
    let span = p.pair_span;
    let quads_per_block = span / 2u;
    let b = (w / quads_per_block) * 2u * span + 2u * (w % quads_per_block);
    return vec4<u32>(b, b + 1u, b + span, b + span + 1u);
}

// The pair (v.x, v.y) of output columns `column` and its partner, turned as the rope
// epilogue turns them (epilogue.wgsl) when they fall in its columns.
fn rope_pair(v: vec2<f32>, column: u32) -> vec2<f32> {
    let local = (column - p.rope_start) % p.rope_head_dim;
    let i = select(local / 2u, local, p.rope_mode == 1u);
    if column < p.rope_start || column >= p.rope_end || i >= p.rope_n_rot / 2u {
        return v;
    }
    let pos = f32(step.past) * p.rope_freq_scale;
    return turn(v.x, v.y, pos * rope_table[i]);
}

// What a decode workgroup stores at its four `rows` given their sums `v`: the folded
// epilogue applied (FOLD_GATED leaves two values, for rows.x and rows.y).
fn folded(fold: u32, rows: vec4<u32>, v: vec4<f32>) -> vec4<f32> {
    switch fold {
        case FOLD_ROPE: {
            // Adjacent pairs are (b, b + 1) and (b + 2, b + 3); halves (b, b + s), (b + 1, b + s + 1).
            if p.rope_mode == 0u {
                return vec4<f32>(rope_pair(v.xy, p.first_row + rows.x), rope_pair(v.zw, p.first_row + rows.z));
            }
            let a = rope_pair(v.xz, p.first_row + rows.x);
            let b = rope_pair(v.yw, p.first_row + rows.y);
            return vec4<f32>(a.x, b.x, a.y, b.y);
        }
        case FOLD_GATED: {
            let gelu = p.rope_mode == 1u;
            let act = select(vec2<f32>(silu_of(v.x), silu_of(v.y)), vec2<f32>(gelu_tanh_of(v.x), gelu_tanh_of(v.y)), gelu);
            return vec4<f32>(act * v.zw, 0.0, 0.0);
        }
        default: {
            return v;
        }
    }
}

// Decode (one row of x): a workgroup of THREADS computes QUADS groups of four rows
// (`quad_rows`), each group one vec4 accumulator. Each invocation strides along the
// rows a slice of 32 weights at a time: it loads the 32 values of x the slice
// multiplies once (and rounds them to 8 bits where ROUND_X), then each row's `dot32`
// (the weight type's dot product, straight-line word loads where the type has one).
// Reductions then sum two groups at once, and the squares of x for a folded prologue.
//
// The executor specialises the kernel through these constants: the epilogue it folds
// as it stores; 1, 2 or 4 groups of rows, more where a matrix has rows enough to keep
// the device busy with fewer workgroups (x's loads and rounding then serve more rows);
// x in 8 bits (`XQ8`), where the session asks for it; and 64 or 128 invocations, more
// where long rows give each of them slices to load. With x in 8 bits, a kernel whose
// output the next one reads whole also stores it rounded, in runs of 8 (WRITE_RUNS;
// a gated kernel of four groups makes one run, another two groups a run), times the
// reader's norm weight where the reader folds a norm (RUNS_NORMED), and the reader
// loads those runs instead of x (READ_RUNS): x is rounded once, not in every workgroup
// that reads it.
override FOLD: u32 = FOLD_NONE;
override QUADS: u32 = 1u;
override ROUND_X: bool = false;
override THREADS: u32 = 64u;
override READ_RUNS: bool = false;
override WRITE_RUNS: bool = false;
override RUNS_NORMED: bool = false;
// Each group of rows computed by a team of THREADS / QUADS invocations of its own
// rather than by all of them: a workgroup making a run of 8 plain outputs (two
// groups) keeps as many invocations on each row as one group would.
override TEAMS: bool = false;

// WRITE_RUNS: the workgroup's outputs.
var<workgroup> run_values: array<f32, 16>;

@compute @workgroup_size(THREADS)
fn matmul_decode(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lanes: Lanes,
) {
    let lid = lanes.index;
    let first_quad = QUADS * workgroup_index(wid, nwg);
    let stride = row_bytes(p.cols);
    // With TEAMS, team k of the invocations computes group k alone.
    let team_size = select(THREADS, THREADS / QUADS, TEAMS);
    let team = lid / team_size;
    // Rows past the last repeat it (their sums are never stored): no branches, so all
    // rows' loads can be in flight together.
    let last = vec4<u32>(p.rows - 1u);
    let at0 = min(quad_rows(first_quad + team), last) * stride;
    let at1 = min(quad_rows(first_quad + 1u), last) * stride;
    let at2 = min(quad_rows(first_quad + 2u), last) * stride;
    let at3 = min(quad_rows(first_quad + 3u), last) * stride;
    let every_group = !TEAMS;
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var squares = 0.0;
    for (var g = lid % team_size; g < p.cols / 32u; g += team_size) {
        var x: X32;
        var xq: XQ8;
        if READ_RUNS {
            let stored = stored_runs(columns32(g));
            xq = stored.q;
            squares += stored.squares;
        } else {
            x = x32(columns32(g));
            squares += x.squares;
            if ROUND_X {
                xq = rounded_q8(x);
            }
        }
        acc0 += quad_dots(at0, g, x, xq);
        if QUADS > 1u && every_group {
            acc1 += quad_dots(at1, g, x, xq);
        }
        if QUADS > 2u && every_group {
            acc2 += quad_dots(at2, g, x, xq);
            acc3 += quad_dots(at3, g, x, xq);
        }
    }
    reduce_quads(acc0, acc1, squares, 0u, lanes);
    if QUADS > 2u && every_group {
        reduce_quads(acc2, acc3, 0.0, 2u, lanes);
    }
    workgroupBarrier();
    // Lane 4q + i stores row i of group q, each computing the folded epilogue of all
    // four of its group (a rotation needs a row's partner).
    if lid < 4u * QUADS {
        var scale = 1.0;
        if p.prologue == 1u {
            scale = 1.0 / sqrt(squares_total(lanes) / f32(p.cols) + p.eps);
        }
        let q = lid / 4u;
        let rows = quad_rows(first_quad + q);
        let values = folded(FOLD, rows, quad_sum(q, lanes) * scale);
        let i = lid % 4u;
        // A gated group stores its two gate rows' columns, where its group is one of
        // the span's (a grid of several groups a workgroup may run past them).
        let gated = i < 2u && rows.x < p.pair_span;
        let stored = select(rows[i] < p.rows, gated, FOLD == FOLD_GATED);
        if stored {
            let value = store(0u, rows[i], values[i]);
            if WRITE_RUNS {
                // A gated group's two outputs, another's four, in order.
                run_values[select(4u * q + i, 2u * q + i, FOLD == FOLD_GATED)] = value;
            }
        }
    }
    if WRITE_RUNS {
        workgroupBarrier();
        // Lane r rounds run r of the workgroup's (the executor has rows end on a whole run).
        let gated = FOLD == FOLD_GATED;
        let runs = select(QUADS / 2u, 1u, gated);
        let column = quad_rows(first_quad).x + 8u * lid;
        if lid < runs && column < select(p.rows, p.pair_span, gated) {
            let at = 8u * lid;
            let lo = vec4<f32>(run_values[at], run_values[at + 1u], run_values[at + 2u], run_values[at + 3u]);
            let hi = vec4<f32>(run_values[at + 4u], run_values[at + 5u], run_values[at + 6u], run_values[at + 7u]);
            out_runs[column / 8u] = output_run(lo, hi, column);
        }
    }
}

// The four rows' dot products with slice g of x (`xq` where ROUND_X).
fn quad_dots(at: vec4<u32>, g: u32, x: X32, xq: XQ8) -> vec4<f32> {
    if ROUND_X {
        return vec4<f32>(dot32_q8(at.x, g, xq), dot32_q8(at.y, g, xq), dot32_q8(at.z, g, xq), dot32_q8(at.w, g, xq));
    }
    return vec4<f32>(dot32(at.x, g, x), dot32(at.y, g, x), dot32(at.z, g, x), dot32(at.w, g, x));
}

// Prefill (several rows of x): a workgroup of 64 computes a TILE × TILE block of the
// output (weight rows × tokens), each invocation an 8 × 8 register tile of it: rows
// 4·(lid % 8) .. + 4 and 32 more, tokens 4·(lid / 8) .. + 4 and 32 more. CHUNK columns
// of W (dequantised) and of x are staged in workgroup memory at a time, four rows or
// tokens to a vec4, so that each column costs an invocation four vec4 reads for 64
// multiply-adds. 16 KiB of workgroup memory: WebGPU's default limit.
const TILE: u32 = 64u;
const CHUNK: u32 = 32u;
// [CHUNK][TILE / 4]: column k's rows (tokens) 4·i .. 4·i + 4 at k · 16 + i.
var<workgroup> w_tile: array<vec4<f32>, 512>;
var<workgroup> x_tile: array<vec4<f32>, 512>;

// acc[i] += w[i] · x: four rows by four tokens.
fn outer_add(acc: ptr<function, mat4x4<f32>>, w: vec4<f32>, x: vec4<f32>) {
    (*acc)[0] += w.x * x;
    (*acc)[1] += w.y * x;
    (*acc)[2] += w.z * x;
    (*acc)[3] += w.w * x;
}

// Stores four rows by four tokens from (row, t).
fn store_block(acc: mat4x4<f32>, row: u32, t: u32, tokens: u32) {
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if row + i < p.rows && t + j < tokens {
                store(t + j, row + i, acc[i][j]);
            }
        }
    }
}

// The first row and token of prefill workgroup `tile`'s output tile, TILE rows by
// `tokens` tokens (tiles run along the rows first).
fn tile_origin(tile: u32, tokens: u32) -> vec2<u32> {
    let row_tiles = (p.rows + TILE - 1u) / TILE;
    return vec2<u32>((tile % row_tiles) * TILE, (tile / row_tiles) * tokens);
}

@compute @workgroup_size(64)
fn matmul_prefill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tokens = row_count(p.fixed_tokens);
    let origin = tile_origin(workgroup_index(wid, nwg), TILE);
    let row0 = origin.x;
    let tok0 = origin.y;
    let stride = row_bytes(p.cols);
    // What this invocation stages: four rows (tokens) 4·quad .. + 4, columns
    // 8·part .. + 8 of the chunk.
    let quad = lid % 16u;
    let part = lid / 16u;
    let tr = lid % 8u;
    let tt = lid / 8u;
    // a: rows lo × tokens lo, b: rows lo × tokens hi, c: rows hi × tokens lo, d: both hi.
    var a = mat4x4<f32>();
    var b = mat4x4<f32>();
    var c = mat4x4<f32>();
    var d = mat4x4<f32>();
    for (var c0 = 0u; c0 < p.cols; c0 += CHUNK) {
        // Rows and tokens past the last repeat it, with no branch around the loads;
        // only their own outputs see them, and `store_block` drops those.
        let r = row0 + 4u * quad;
        let g = c0 / 8u + part;
        let w0 = row_part(min(r, p.rows - 1u) * stride, g);
        let w1 = row_part(min(r + 1u, p.rows - 1u) * stride, g);
        let w2 = row_part(min(r + 2u, p.rows - 1u) * stride, g);
        let w3 = row_part(min(r + 3u, p.rows - 1u) * stride, g);
        let t = tok0 + 4u * quad;
        let last = tokens - 1u;
        for (var k = 0u; k < 8u; k++) {
            let at = (8u * part + k) * 16u + quad;
            w_tile[at] = vec4<f32>(w0[k], w1[k], w2[k], w3[k]);
            let col = c0 + 8u * part + k;
            let xs = vec4<f32>(
                x_at(min(t, last), col),
                x_at(min(t + 1u, last), col),
                x_at(min(t + 2u, last), col),
                x_at(min(t + 3u, last), col),
            );
            x_tile[at] = xs;
        }
        workgroupBarrier();
        for (var k = 0u; k < CHUNK; k++) {
            let w_lo = w_tile[k * 16u + tr];
            let w_hi = w_tile[k * 16u + 8u + tr];
            let x_lo = x_tile[k * 16u + tt];
            let x_hi = x_tile[k * 16u + 8u + tt];
            outer_add(&a, w_lo, x_lo);
            outer_add(&b, w_lo, x_hi);
            outer_add(&c, w_hi, x_lo);
            outer_add(&d, w_hi, x_hi);
        }
        workgroupBarrier();
    }
    let row_lo = row0 + 4u * tr;
    let tok_lo = tok0 + 4u * tt;
    store_block(a, row_lo, tok_lo, tokens);
    store_block(b, row_lo, tok_lo + 32u, tokens);
    store_block(c, row_lo + 32u, tok_lo, tokens);
    store_block(d, row_lo + 32u, tok_lo + 32u, tokens);
}
