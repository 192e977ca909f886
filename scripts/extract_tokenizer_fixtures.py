#!/usr/bin/env python3
"""Copies the tokenizer and chat-template cases of llama.cpp's reference outputs
(shared/reference/<model>/tokenize.json and greedy.json) into
tests/fixtures/tokenizer/, keeping only the fields the tests check.

usage: scripts/extract_tokenizer_fixtures.py [REFERENCE_DIR]
(default: ../shared/reference relative to the repository root)
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "smollm2-135m-instruct-q4_1": "smollm2",
    "gemma-3-270m-q4_k_m": "gemma3",
}
CASE_FIELDS = [
    "id", "category", "text",
    "ids", "ids_no_add_special", "ids_parse_special_false",
    "ids_no_add_special_parse_special_false",
    "pieces_hex", "detok_render_special_false",
    "detokenize_keep_special", "detokenize_remove_special",
]
MODEL_FIELDS = ["file", "sha256", "n_vocab", "add_bos", "add_eos", "bos", "eos", "eot",
                "eog_ids", "has_chat_template"]


def dump(obj):
    """JSON with one line per case, so that diffs stay readable."""
    lines = ["{"]
    items = list(obj.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        if isinstance(value, list):
            lines.append(f"  {json.dumps(key)}: [")
            for j, item in enumerate(value):
                sep = "," if j + 1 < len(value) else ""
                lines.append("    " + json.dumps(item, ensure_ascii=False) + sep)
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    ref = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "reference")
    out_dir = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    for folder, name in MODELS.items():
        tok = json.load(open(os.path.join(ref, folder, "tokenize.json"), encoding="utf-8"))
        greedy = json.load(open(os.path.join(ref, folder, "greedy.json"), encoding="utf-8"))
        fixture = {
            "source": f"llama.cpp {tok['llama_cpp']['commit']} via shared/reference/{folder}",
            "model": {k: tok["model"][k] for k in MODEL_FIELDS},
            "cases": [{k: c[k] for k in CASE_FIELDS} for c in tok["cases"]],
            # Prompts of the generation reference: llama_tokenize(add_special=true,
            # parse_special=true) of longer real text.
            "prompts": [{"id": c["id"], "text": c["prompt"], "ids": c["prompt_ids"]}
                        for c in greedy["cases"]],
        }
        with open(os.path.join(out_dir, f"{name}_tokenize.json"), "w", encoding="utf-8") as f:
            f.write(dump(fixture))
        chats = []
        for c in greedy["cases"]:
            if c["kind"] != "chat":
                continue
            chats.append({
                "id": c["id"],
                "how": c["chat_template"],
                "user": c["user_text"],
                "prompt": c["prompt"],
                "legacy": c["category"] == "chat_legacy_template",
            })
        with open(os.path.join(out_dir, f"{name}_chat.json"), "w", encoding="utf-8") as f:
            f.write(dump({"source": fixture["source"], "cases": chats}))
        print(f"{name}: {len(fixture['cases'])} tokenizer cases, "
              f"{len(fixture['prompts'])} prompts, {len(chats)} chat prompts")


if __name__ == "__main__":
    main()
