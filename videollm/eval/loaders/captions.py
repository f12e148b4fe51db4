"""Video captioning: MSR-VTT and MSVD, one item per video with all its reference captions.

- MSR-VTT (Xu et al. 2016) `test_videodatainfo.json` (also `train_val_videodatainfo.json`):
  `{"videos": [{"video_id": "video7010", "split": "test", ...}], "sentences": [{"video_id",
  "caption", "sen_id"}]}`; the YAML's `options.split` picks the split (default test); videos
  `TestVideo/video7010.mp4` (or `videos/all/`, as Video-LLaVA lays them out).
- MSVD (Chen & Dolan 2011) `MSR Video Description Corpus.csv` (`VideoID, Start, End, ...,
  Language, Description`; English rows only; clip `<VideoID>_<Start>_<End>`) or the
  `AllVideoDescriptions.txt` text release (`<clip> <caption>` per line). The standard test split
  is vid1301-vid1970 of `youtube_mapping.txt` (Venugopalan et al. 2015), used when that file
  is present (`options.split_range`); videos `YouTubeClips/<clip>.avi`.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from videollm.eval.items import EvalItem
from videollm.eval.loaders import VideoFinder, apply_prompt, loader, read_json, require
from videollm.eval.loaders.open_ended import youtube_mapping
from videollm.eval.tasks import TaskError, TaskSpec


def _caption_items(spec: TaskSpec, data_dir: Path, refs: dict[str, list[str]]) -> list[EvalItem]:
    finder = VideoFinder(spec, data_dir)
    items = []
    for name, captions in refs.items():
        video, error = finder.find(name)
        items.append(
            EvalItem(
                task=spec.task,
                id=name,
                prompt=apply_prompt(spec),
                video=video,
                video_name=name,
                video_error=error,
                references=tuple(captions),
            )
        )
    return items


@loader("msrvtt_caption")
def load_msrvtt_caption(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    data = read_json(ann)
    if not isinstance(data, dict) or "videos" not in data or "sentences" not in data:
        raise TaskError(f"{ann}: expected MSR-VTT's videodatainfo json with 'videos' and 'sentences'")
    split = spec.options.get("split", "test")
    videos = [v for v in data["videos"] if split in (None, "all") or v.get("split") == split]
    if not videos:
        raise TaskError(f"{ann}: no video with split {split!r}")
    refs: dict[str, list[str]] = {str(v["video_id"]): [] for v in videos}
    for i, s in enumerate(data["sentences"]):
        require(s, ("video_id", "caption"), f"{ann} sentence {i}")
        if str(s["video_id"]) in refs:
            refs[str(s["video_id"])].append(str(s["caption"]))
    return _caption_items(spec, data_dir, refs)


def _msvd_split(spec: TaskSpec, data_dir: Path) -> set[str] | None:
    mapping_path = data_dir / spec.options.get("mapping", "youtube_mapping.txt")
    lo_hi = spec.options.get("split_range")
    if not lo_hi or not mapping_path.exists():
        return None
    lo, hi = int(lo_hi[0]), int(lo_hi[1])
    return {clip for vid, clip in youtube_mapping(mapping_path).items() if lo <= int(vid[3:]) <= hi}


@loader("msvd_caption")
def load_msvd_caption(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    refs: dict[str, list[str]] = defaultdict(list)
    if ann.suffix == ".csv":
        with open(ann, encoding="utf-8", errors="replace", newline="") as f:
            for i, r in enumerate(csv.DictReader(f)):
                require(r, ("VideoID", "Start", "End", "Language", "Description"), f"{ann} row {i + 2}")
                if r["Language"] == "English" and r["Description"]:
                    refs[f"{r['VideoID']}_{r['Start']}_{r['End']}"].append(r["Description"])
    else:
        for n, line in enumerate(ann.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.strip() and not line.startswith("#"):
                parts = line.strip().split(" ", 1)
                if len(parts) != 2:
                    raise TaskError(f"{ann}:{n}: expected '<clip> <caption>', got {line!r}")
                refs[parts[0]].append(parts[1])
    keep = _msvd_split(spec, data_dir)
    if keep is not None:
        refs = {k: v for k, v in refs.items() if k in keep}
    if not refs:
        raise TaskError(f"{ann}: no captions found (for the selected split)")
    return _caption_items(spec, data_dir, dict(refs))
