#!/usr/bin/env bash
# Times kernel variants side by side on the device machine, in one call: for the
# built-in modules and then for each DIR of replacement module files (as
# `rustorch-compile --emit-wgsl` writes them, loaded through RUSTORCH_WGSL_DIR), the
# GPU-vs-CPU top-1 agreement at 8 prompt positions, `bench -p 512 -n 128 -r 3` and the
# decode profile's matmul rows, for each synthetic model named in MODELS
# (default: mistral; also: tinyllama).
#
#   MODELS="mistral tinyllama" scripts/device-kernels.sh BIN_DIR OUT_DIR [DIR …]
set -uo pipefail
bin=${1:?binary dir}
out=${2:?output dir}
shift 2
if compgen -G ".gl/*.deb" >/dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export XDG_RUNTIME_DIR=/tmp
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
models=/tmp/synth
mkdir -p "$models"
declare -A preset=([mistral]="mistral-7b q4_k_m" [tinyllama]="tinyllama-1.1b q4_0")
ids=1,415,5565,302,4843,349,264,1369
prompt="The quick brown fox jumps over the lazy dog and keeps running"
for m in ${MODELS:-mistral}; do
  read -r name quant <<<"${preset[$m]}"
  [ -f "$models/$m.gguf" ] || "$bin/rustorch-compile" synth --preset "$name" --quant "$quant" -o "$models/$m.gguf"
  "$bin/rustorch-exec" logits "$models/$m.gguf" --ids $ids --top 10 --json --backend cpu >"$out/$m-cpu.json" 2>/dev/null
  for variant in built-in "$@"; do
    tag=$m-$(basename "$variant")
    (
      [ "$variant" = built-in ] || export RUSTORCH_WGSL_DIR=$variant
      "$bin/rustorch-exec" logits "$models/$m.gguf" --ids $ids --top 10 --json --backend gpu >"$out/$tag-gpu.json"
      "$bin/rustorch-exec" bench "$models/$m.gguf" -p 512 -n 128 -r 3 --backend gpu --json >"$out/$tag-bench.json"
      "$bin/rustorch-exec" profile "$models/$m.gguf" -p "$prompt" --json >"$out/$tag-profile.json"
    ) 2>"$out/$tag-stderr.txt"
  done
done

python3 - "$out" "$@" <<'PY'
import json, os, sys
out, variants = sys.argv[1], ["built-in"] + [os.path.basename(v) for v in sys.argv[2:]]
for m in os.environ.get("MODELS", "mistral").split():
    cpu = json.load(open(f"{out}/{m}-cpu.json"))
    for v in variants:
        tag = f"{m}-{v}"
        try:
            gpu = json.load(open(f"{out}/{tag}-gpu.json"))
            r = json.load(open(f"{out}/{tag}-bench.json"))["report"]
            d = json.load(open(f"{out}/{tag}-profile.json"))["decode"]
        except Exception as e:
            print(f"{tag}: failed ({e}); stderr:", open(f"{out}/{tag}-stderr.txt").read()[-600:])
            continue
        top1 = lambda j: [p["top"][0][0] for p in j["positions"]]
        agree = sum(a == b for a, b in zip(top1(gpu), top1(cpu)))
        print(f"{tag}: tg128 {r['tg_tok_s']['median']:.1f} tok/s, pp512 {r['pp_tok_s']['median']:.0f} tok/s, "
              f"top-1 {agree}/{len(top1(cpu))}, decode {d['gpu_us']:.0f} µs GPU")
        kinds = {}
        for x in d["dispatches"]:
            if not x["weight_bytes"]:
                continue
            label = x["label"].split(".", 2)[-1] if x["label"].startswith("blk.") else x["label"]
            t, n, w = kinds.get(label, (0.0, 0, 0))
            kinds[label] = (t + x["gpu_us"], n + 1, w + x["weight_bytes"])
        for label, (t, n, w) in sorted(kinds.items(), key=lambda kv: -kv[1][0])[:6]:
            print(f"    {label:28s} {t / n:7.1f} µs each, {w / t / 1e3:5.0f} GB/s")
PY
