"""The torchvision shim: PyPI's CUDA torchvision must import next to the CPU torch (vLLM and
transformers' video processors need it), in any fresh interpreter of the environment."""

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_fresh_interpreter_imports_the_pinned_stack():
    # Exactly the check the issue asks for, in a process that never imports videollm.
    r = _run("""
        import transformers, vllm, deepspeed, peft, decord, av
        from transformers import LlamaConfig
        import torchvision
        from torchvision.transforms.v2 import functional as F
        import torch
        assert F.resize(torch.zeros(3, 10, 10), [5, 5]).shape == (3, 5, 5)
        print("ok")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")


def test_transformers_video_processor_works_through_the_shim():
    r = _run("""
        import numpy as np
        from transformers import LlavaOnevisionVideoProcessor
        out = LlavaOnevisionVideoProcessor()(videos=[np.zeros((2, 32, 32, 3), np.uint8)], return_tensors="pt")
        print(tuple(out["pixel_values_videos"].shape))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "(1, 2, 3, 384, 384)"


def test_detection_ops_fail_loudly_not_silently():
    # The shim only defines schemas: calling a compiled-only op must raise, never return garbage.
    r = _run("""
        import torch, torchvision
        try:
            torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)
        except Exception as e:
            print("raised", type(e).__name__)
        else:
            from torchvision.extension import _has_ops
            print("ran" if _has_ops() else "ran-without-ops")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("raised") or last == "ran", last


def test_hook_is_idempotent_in_process():
    from videollm import _compat

    _compat.install_torchvision_hook()
    _compat.install_torchvision_hook()
    shims = [f for f in sys.meta_path if type(f).__name__ == "TorchvisionOpsShim"]
    assert len(shims) <= 1


def test_import_order_transformers_then_videollm():
    # transformers' availability probe fires the .pth hook without importing torchvision; a second hook
    # installed by `import videollm` must not define the schemas again when torchvision is imported.
    r = _run("""
        import transformers
        import videollm
        from transformers import AutoProcessor, LlavaOnevisionVideoProcessor
        import torchvision
        print("ok")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
