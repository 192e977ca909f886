#!/usr/bin/env bash
# Runs on a GPU machine (the project's device machine, an NVIDIA H100): makes Vulkan
# usable from the carried loader debs, writes synthetic TinyLlama-1.1B Q4_0 and
# Mistral-7B Q4_K_M, and checks the GPU against the CPU interpreter on both (top
# logits at every prompt position, greedy tokens), then times GPU generation.
#
#   scripts/device-check.sh BIN_DIR OUT_DIR      # BIN_DIR holds rustorch-compile, rustorch-exec
set -uo pipefail
bin=${1:?binary dir}
out=${2:?output dir}
if compgen -G ".gl/*.deb" >/dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
export XDG_RUNTIME_DIR=/tmp
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt"

models=/tmp/synth
mkdir -p "$models"
"$bin/rustorch-compile" synth --preset tinyllama-1.1b --quant q4_0 -o "$models/tinyllama.gguf"
"$bin/rustorch-compile" synth --preset mistral-7b --quant q4_k_m -o "$models/mistral.gguf"

ids=1,415,5565,302,4843,349,264,1369
for m in tinyllama mistral; do
  for backend in gpu cpu; do
    "$bin/rustorch-exec" logits "$models/$m.gguf" --ids $ids --top 10 --json --backend $backend \
      >"$out/$m-logits-$backend.json" 2>>"$out/$m-stderr.txt"
    # Both backends round x alike (the GPU's default, asked of the CPU too).
    "$bin/rustorch-exec" generate "$models/$m.gguf" -p "Hello world" -n 8 --temp 0 --json --backend $backend --decode-x int8 \
      >"$out/$m-greedy-$backend.json" 2>>"$out/$m-stderr.txt"
  done
  "$bin/rustorch-exec" generate "$models/$m.gguf" -p "Hello world" -n 128 --temp 0 --json --backend gpu \
    >"$out/$m-tg128-gpu.json" 2>>"$out/$m-stderr.txt"
done

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for m in ["tinyllama", "mistral"]:
    try:
        g = json.load(open(f"{out}/{m}-logits-gpu.json"))
        c = json.load(open(f"{out}/{m}-logits-cpu.json"))
    except Exception as e:
        print(m, "logits missing:", e)
        continue
    worst = 0.0
    same_top1 = 0
    for pg, pc in zip(g["positions"], c["positions"]):
        cpu = {i: v for i, v in pc["top"]}
        gpu = {i: v for i, v in pg["top"]}
        same_top1 += pg["top"][0][0] == pc["top"][0][0]
        for i, v in cpu.items():
            if i in gpu:
                worst = max(worst, abs(gpu[i] - v) / max(1e-6, abs(v)))
    print(f"{m}: top-1 equal at {same_top1}/{len(c['positions'])} positions, worst relative diff of shared top-10 logits {worst:.2e}")
    try:
        gg = json.load(open(f"{out}/{m}-greedy-gpu.json"))
        gc = json.load(open(f"{out}/{m}-greedy-cpu.json"))
        print(f"{m}: greedy GPU {gg['tokens']} CPU {gc['tokens']} equal={gg['tokens'] == gc['tokens']}")
        t = json.load(open(f"{out}/{m}-tg128-gpu.json"))["timings"]
        print(f"{m}: GPU load {t['load_ms']:.0f} ms, prompt {t['prompt_tok_s']:.1f} tok/s, generation {t['gen_tok_s']:.1f} tok/s")
    except Exception as e:
        print(m, "greedy/timing missing:", e)
PY
