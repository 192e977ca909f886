#!/usr/bin/env bash
# The whole GPU benchmark in one call on the device machine (an NVIDIA H100): the
# agreement check (scripts/device-check.sh, which also writes synthetic TinyLlama-1.1B
# Q4_0 and Mistral-7B Q4_K_M to /tmp/synth), then `bench` (pp512, tg128, median of 5)
# and `profile` of each, as JSON in OUT_DIR, and a summary table on stdout.
#
#   scripts/device-bench.sh BIN_DIR OUT_DIR      # BIN_DIR holds rustorch-compile, rustorch-exec
set -uo pipefail
bin=${1:?binary dir}
out=${2:?output dir}
bash "$(dirname "$0")/device-check.sh" "$bin" "$out" >"$out/check.txt" 2>&1
cat "$out/check.txt" | grep -E "top-1|greedy|H100|NVIDIA"
export XDG_RUNTIME_DIR=/tmp
prompt="The quick brown fox jumps over the lazy dog and keeps running"
for m in tinyllama mistral; do
  "$bin/rustorch-exec" bench "/tmp/synth/$m.gguf" -p 512 -n 128 -r 5 --backend gpu --json \
    >"$out/$m-bench.json" 2>>"$out/$m-stderr.txt"
  "$bin/rustorch-exec" profile "/tmp/synth/$m.gguf" -p "$prompt" --json \
    >"$out/$m-profile.json" 2>>"$out/$m-stderr.txt"
done

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("| model | pp512 tok/s | tg128 tok/s | load ms | dispatches/token | weight MB/token | copy GB/s | tg of copy bw |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for m in ["tinyllama", "mistral"]:
    try:
        b = json.load(open(f"{out}/{m}-bench.json"))
    except Exception as e:
        print(m, "bench missing:", e)
        continue
    r = b["report"]
    g = r["gpu"]
    s = lambda x: f"{x['median']:.1f} ({x['min']:.1f} .. {x['max']:.1f})"
    print(f"| {m} | {s(r['pp_tok_s'])} | {s(r['tg_tok_s'])} | {b['load_ms']:.0f} | {g['dispatches_per_token']} "
          f"| {g['weight_bytes_per_token'] / 1e6:.1f} | {g['copy']['gb_s']:.0f} | {100 * g['tg_bandwidth_fraction']:.1f}% |")
for m in ["tinyllama", "mistral"]:
    try:
        p = json.load(open(f"{out}/{m}-profile.json"))
    except Exception as e:
        print(m, "profile missing:", e)
        continue
    d = p["decode"]
    kinds = {}
    for x in d["dispatches"]:
        label = x["label"].split(".", 2)[-1] if x["label"].startswith("blk.") else x["label"]
        t, n, w = kinds.get(label, (0.0, 0, 0))
        kinds[label] = (t + x["gpu_us"], n + 1, w + (x["weight_bytes"] or 0))
    print(f"{m} decode: {d['gpu_us']:.0f} µs GPU over {len(d['dispatches'])} dispatches, {d['unprofiled_wall_us']:.0f} µs wall unprofiled")
    for label, (t, n, w) in sorted(kinds.items(), key=lambda kv: -kv[1][0])[:10]:
        rate = f"{w / t / 1e3:.0f} GB/s" if w else ""
        print(f"  {label:28s} {t:8.0f} µs in {n:3d} ({t / n:6.1f} each) {rate}")
PY
