"""PyAV (FFmpeg) backend: opens containers, indexes their frames and decodes exactly what is asked.

Frame `i` is the i-th frame in presentation order (packets ranked by pts), the numbering decord
uses too. Decoding is planned per keyframe: for each group of requested frames that share a
keyframe, seek to it, feed packets only up to the last requested one, and let FFmpeg skip
non-reference frames that are not requested (`skip_frame=NONREF`: nothing depends on them, so the
requested frames are bit-identical to a full decode). Dense requests thus decode sequentially,
sparse ones seek, and neither decodes a frame that no requested frame needs.

Indexing: MP4/MOV files carry a sample table, read without demuxing (`index_entries`); there
keyframe `k` in decode order is frame `k` in presentation order as long as the stream has closed
GOPs, which is verified on every GOP the decoder enters (its keyframe must come first in
presentation order). Other containers, and streams that fail that check (open GOPs), are indexed
by demuxing every packet once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from videollm.video.info import VideoInfo
from videollm.video.sources import Deadline, Media
from videollm.video.types import VideoError

_REENCODE = "re-encode it to H.264, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4`"


_AVINDEX_KEYFRAME, _AVINDEX_DISCARD_FRAME = 1, 2  # libavformat's AVIndexEntry flags


class _NeedFullIndex(Exception):
    """The sample-table shortcut does not hold for this stream; index it by demuxing."""


def open_container(media: Media):
    """Open `media` with PyAV and return (container, video stream), or a precise `VideoError`."""
    import av

    source = str(media.path) if media.path is not None else io.BytesIO(media.data)
    try:
        container = av.open(source, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise _open_error(media, e) from None
    except OSError as e:
        raise VideoError(f"cannot read the file ({e})", source=media.name) from None
    if not container.streams.video:
        container.close()
        raise VideoError(
            f"no video stream in this {container.format.name} file (audio only, or not a video)",
            source=media.name,
            status=415,
        )
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise VideoError(
            f"unsupported video codec{_fourcc(media)}: FFmpeg has no decoder for it; {_REENCODE}",
            source=media.name,
            status=415,
        )
    return container, stream


def _read_head(media: Media, size: int) -> bytes:
    if media.data is not None:
        return media.data[:size]
    with open(media.path, "rb") as f:
        return f.read(size)


def _open_binary(media: Media) -> BinaryIO:
    return io.BytesIO(media.data) if media.data is not None else open(media.path, "rb")


def mp4_top_level_boxes(f: BinaryIO) -> list[str]:
    """Types of the top-level ISO-BMFF boxes, walking headers only (stops at a damaged one)."""
    f.seek(0, io.SEEK_END)
    end = f.tell()
    offset, types = 0, []
    while offset + 8 <= end:
        f.seek(offset)
        size, kind = struct.unpack(">I4s", f.read(8))
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
        elif size == 0:
            size = end - offset
        types.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return types


def _open_error(media: Media, error: Exception) -> VideoError:
    head = _read_head(media, 12)
    if head[4:8] == b"ftyp":  # an MP4/MOV file that FFmpeg cannot open: say why
        with _open_binary(media) as f:
            boxes = mp4_top_level_boxes(f)
        if "moov" not in boxes:
            return VideoError(
                "truncated or corrupt MP4: no moov atom (the index of the file) was found, so the "
                "file was probably cut off while being written or downloaded; download or export it "
                "again",
                source=media.name,
            )
        return VideoError(f"corrupt MP4 file ({error.strerror or error})", source=media.name)
    return VideoError(
        "not a video file: FFmpeg does not recognise its format "
        f"({getattr(error, 'strerror', None) or error})",
        source=media.name,
        status=415,
    )


def _fourcc(media: Media) -> str:
    """The sample-entry fourcc of an MP4 stream FFmpeg cannot decode, for the error message."""
    head = _read_head(media, 1 << 20) if media.data is None else media.data
    at = head.find(b"stsd")
    if at < 0 or at + 20 > len(head):
        return ""
    return f" {head[at + 16 : at + 20].decode('latin-1')!r}"


def _frame_rate(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 0.0


class PyAVReader:
    """One opened video: `info`, and `read` to decode frames by index."""

    backend = "pyav"

    def __init__(self, media: Media, deadline: Deadline):
        import av

        self.name = media.name
        self.version = av.__version__
        self.container, self.stream = open_container(media)
        self.deadline = deadline
        try:
            self._open(media)
        except BaseException:
            self.container.close()
            raise

    def _open(self, media: Media) -> None:
        deadline = self.deadline
        entries = self.stream.index_entries
        count = len(entries)
        self._index: _Index
        try:
            if not (count > 0 and count == self.stream.frames):
                raise _NeedFullIndex
            self._index = _SampleTableIndex(self.container, self.stream, entries, media)
        except _NeedFullIndex:
            self._index = _DemuxIndex(self.container, self.stream, media.name, deadline, rewind=True)
        fps = _frame_rate(self.stream)
        if not fps:
            raise VideoError(f"unknown frame rate; {_REENCODE}", source=media.name, status=415)
        ctx = self.stream.codec_context
        self.info = VideoInfo(
            source=media.name,
            num_frames=self._index.num_frames,
            fps=fps,
            width=ctx.width,
            height=ctx.height,
            codec=ctx.name,
            container=self.container.format.name,
            keyframes=self._index.keyframes,
            open_gop=self._index.open_gop,
        )
        if self.info.num_frames == 0:
            raise VideoError("the video has zero frames", source=media.name)
        if not ctx.width or not ctx.height:
            raise VideoError(f"the video stream has no frame size; {_REENCODE}", source=media.name)

    def close(self) -> None:
        self.container.close()

    def _full_index(self) -> None:
        self._index = _DemuxIndex(self.container, self.stream, self.name, self.deadline, rewind=True)
        self.info = dataclasses.replace(
            self.info, keyframes=self._index.keyframes, open_gop=self._index.open_gop
        )

    def keyframes_closed(self, keys: np.ndarray) -> bool:
        """True if decoding may start at each of `keys` (no frame before it depends on it)."""
        try:
            return self._index.keyframes_closed(keys)
        except _NeedFullIndex:
            self._full_index()
            return not self._index.open_gop

    def read(self, targets: np.ndarray, *, keyframes_only: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (frame index, RGB frame) for each of the sorted, distinct `targets`."""
        import av

        # Runs of frames decode fastest with frame threads; lone keyframes would only wait for them.
        if not self.stream.codec_context.is_open:
            self.stream.thread_type = "SLICE" if keyframes_only else "AUTO"
        try:
            yield from self._read_all(targets, keyframes_only)
        except av.error.FFmpegError as e:
            raise VideoError(
                f"corrupt video data: FFmpeg failed while decoding ({e.strerror or e})", source=self.name
            ) from None

    def _read_all(self, targets: np.ndarray, keyframes_only: bool) -> Iterator[tuple[int, np.ndarray]]:
        done: set[int] = set()
        while True:
            todo = np.array([t for t in targets if int(t) not in done], dtype=np.int64)
            try:
                for index, frame in self._read(todo, keyframes_only):
                    done.add(index)
                    yield index, frame
                return
            except _NeedFullIndex:  # frames yielded so far came from verified GOPs: keep them
                self._full_index()

    def _read(self, targets: np.ndarray, keyframes_only: bool) -> Iterator[tuple[int, np.ndarray]]:
        index = self._index
        ctx = self.stream.codec_context
        keys = index.keyframes
        if keyframes_only:
            missing = np.setdiff1d(targets, keys)
            if missing.size:
                raise VideoError(f"frames {missing[:5].tolist()} are not keyframes", source=self.name)
            for key in targets.tolist():  # one GOP head per sample: feed the keyframe alone, drain
                self.deadline.check(self.name)
                packet = index.key_packet(key)
                ctx.flush_buffers()
                ctx.skip_frame = "DEFAULT"
                for frame in [*ctx.decode(packet), *ctx.decode(None)]:
                    if frame.pts == packet.pts:
                        yield key, frame.to_ndarray(format="rgb24")
                        break
                else:
                    raise VideoError(f"keyframe {key} could not be decoded", source=self.name)
            return
        owner = keys[np.clip(np.searchsorted(keys, targets, side="right") - 1, 0, None)]
        groups = [(int(k), targets[owner == k].tolist()) for k in np.unique(owner)]
        for key, wanted in groups:
            self.deadline.check(self.name)
            pending = set(wanted)
            unfed = set(wanted)
            ctx.flush_buffers()
            for packet, display in index.packets_from(key):
                self.deadline.check(self.name)
                ctx.skip_frame = "DEFAULT" if display in unfed else "NONREF"
                unfed.discard(display)
                for frame in ctx.decode(packet):
                    yield from self._take(frame, pending)
                if not unfed:
                    break
            ctx.skip_frame = "DEFAULT"
            for frame in ctx.decode(None):  # drain frames the decoder holds back for reordering
                yield from self._take(frame, pending)
            if pending:
                raise VideoError(
                    f"frames {sorted(pending)[:5]} could not be decoded (truncated or corrupt video data)",
                    source=self.name,
                )

    def _take(self, frame, pending: set[int]) -> Iterator[tuple[int, np.ndarray]]:
        display = self._index.display_of(frame.pts)
        if display in pending:
            pending.discard(display)
            yield display, frame.to_ndarray(format="rgb24")


class _Index:
    num_frames: int
    keyframes: np.ndarray
    open_gop: bool | None

    def packets_from(self, key: int) -> Iterator[tuple[object, int]]:
        """Packets in decode order from keyframe `key` (a frame index) on, with their frame index."""
        raise NotImplementedError

    def display_of(self, pts: int | None) -> int | None:
        raise NotImplementedError

    def key_packet(self, key: int):
        """The packet of keyframe `key`, with the demuxer positioned right after it."""
        raise NotImplementedError

    def keyframes_closed(self, keys: np.ndarray) -> bool:
        raise NotImplementedError


def _seek(container, stream, timestamp: int) -> None:
    container.seek(int(timestamp), backward=True, any_frame=False, stream=stream)


def _real_packets(container, stream) -> Iterator:
    for packet in container.demux(stream):
        if packet.size:  # the empty packet at the end only signals end of stream
            yield packet


class _SampleTableIndex(_Index):
    """MP4/MOV: frame count and keyframes from the sample table; GOPs verified closed when used."""

    def __init__(self, container, stream, entries, media: Media):
        self.container, self.stream = container, stream
        dts, flags, end = [], [], 0
        for entry in entries:  # one pass: each IndexEntry access costs a Python object
            dts.append(entry.timestamp)
            flags.append(entry.flags)
            end = max(end, entry.pos + entry.size)
        flags = np.array(flags)
        if flags.size == 0 or (flags & _AVINDEX_DISCARD_FRAME).any():
            raise _NeedFullIndex  # edit lists hide frames: count what the demuxer really returns
        self.dts = np.array(dts, dtype=np.int64)
        if np.any(np.diff(self.dts) <= 0):
            raise _NeedFullIndex
        size = len(media.data) if media.data is not None else media.path.stat().st_size
        if end > size:
            raise VideoError(
                f"truncated MP4: its index lists {len(dts)} frames but the file ends early ({size} of "
                f"{end} bytes); download or export it again",
                source=media.name,
            )
        self.num_frames = len(dts)
        self.keyframes = np.flatnonzero(flags & _AVINDEX_KEYFRAME).astype(np.int64)
        if self.keyframes.size == 0 or self.keyframes[0] != 0:
            raise _NeedFullIndex
        self.open_gop = None
        first = next(_real_packets(container, stream), None)
        if first is None or first.pts is None or first.dts != self.dts[0]:
            raise _NeedFullIndex
        self.start_pts = first.pts
        self.delay = first.pts - first.dts  # keyframes' pts - dts (B-frame reorder delay)
        self.pts_to_display: dict[int, int] = {}

    def _position(self, packet) -> int:
        position = int(np.searchsorted(self.dts, packet.dts)) if packet.dts is not None else -1
        if not 0 <= position < self.num_frames or self.dts[position] != packet.dts:
            raise _NeedFullIndex  # the table does not describe the packets
        return position

    def _packets_at(self, key: int) -> Iterator:
        """Demuxed packets starting exactly at decode position `key`."""
        # MP4 seeks by pts; a keyframe's pts is its dts plus the stream's reorder delay.
        for timestamp in (self.dts[key] + self.delay, self.dts[key]):
            _seek(self.container, self.stream, timestamp)
            packets = _real_packets(self.container, self.stream)
            packet = next(packets, None)
            if packet is None or self._position(packet) > key:
                continue  # overshot
            while self._position(packet) < key:
                packet = next(packets)
            yield packet
            yield from packets
            return
        raise _NeedFullIndex

    def packets_from(self, key: int) -> Iterator[tuple[object, int]]:
        gop_start = key
        gop: list = []
        for packet in self._packets_at(key):
            if packet.is_keyframe and gop:
                yield from self._gop(gop, gop_start)
                gop_start, gop = gop_start + len(gop), []
            gop.append(packet)
        if gop:
            yield from self._gop(gop, gop_start)

    def _gop(self, packets: list, start: int) -> Iterator[tuple[object, int]]:
        pts = np.array([p.pts for p in packets], dtype=np.int64)
        if pts.argmin() != 0:  # a frame shown before its keyframe: open GOP
            raise _NeedFullIndex
        ranks = np.empty(len(pts), dtype=np.int64)
        ranks[np.argsort(pts, kind="stable")] = np.arange(len(pts))
        displays = start + ranks
        self.pts_to_display.update(zip(pts.tolist(), displays.tolist(), strict=True))
        yield from zip(packets, displays.tolist(), strict=True)

    def display_of(self, pts: int | None) -> int | None:
        return self.pts_to_display.get(pts)

    def key_packet(self, key: int):
        """The keyframe's packet; its pts must put it at frame `key` (else: open GOP or VFR)."""
        packet = next(self._packets_at(key))
        frame_time = float(self.stream.time_base) * _frame_rate(self.stream)
        if round((packet.pts - self.start_pts) * frame_time) != key:
            raise _NeedFullIndex
        self.pts_to_display[packet.pts] = key
        return packet

    def keyframes_closed(self, keys: np.ndarray) -> bool:
        for key in np.unique(keys).tolist():
            self.key_packet(key)
        return True


class _DemuxIndex(_Index):
    """Any container: every packet's pts, demuxed once; frame index = rank of pts."""

    def __init__(self, container, stream, name: str, deadline: Deadline, *, rewind: bool = False):
        import av

        self.container, self.stream = container, stream
        if rewind:
            with contextlib.suppress(av.error.FFmpegError):  # not seekable: nothing was read yet either
                _seek(container, stream, stream.start_time or 0)
        pts, dts, keys = [], [], []
        for i, packet in enumerate(_real_packets(container, stream)):
            if i % 4096 == 0:
                deadline.check(name, "indexing")
            if packet.is_discard:
                continue
            if packet.pts is None:
                raise VideoError(
                    f"the video stream has no timestamps; remux it into MP4 (`ffmpeg -i IN -c copy OUT.mp4`) or {_REENCODE}",
                    source=name,
                    status=415,
                )
            pts.append(packet.pts)
            dts.append(packet.dts if packet.dts is not None else packet.pts)
            keys.append(packet.is_keyframe)
        self.pts = np.array(pts, dtype=np.int64)
        self.dts = np.array(dts, dtype=np.int64)
        self.num_frames = len(pts)
        order = np.argsort(self.pts, kind="stable")
        self.display = np.empty(self.num_frames, dtype=np.int64)  # decode position -> frame index
        self.display[order] = np.arange(self.num_frames)
        self.decode = order  # frame index -> decode position
        self.pts_to_display = dict(zip(pts, self.display.tolist(), strict=True))
        self.pts_to_decode = {p: i for i, p in enumerate(pts)}
        key_positions = np.flatnonzero(np.array(keys, dtype=bool))
        if not key_positions.size:  # nothing flagged: decoding can still start at the stream's start
            key_positions = np.zeros(min(1, self.num_frames), dtype=np.int64)
        self.keyframes = np.sort(self.display[key_positions])
        # A keyframe that is not the first frame of its decode-order GOP in presentation order.
        self.open_gop = any(self.display[p] != p for p in key_positions.tolist())

    def keyframes_closed(self, keys: np.ndarray) -> bool:
        return not self.open_gop

    def display_of(self, pts: int | None) -> int | None:
        return self.pts_to_display.get(pts)

    def key_packet(self, key: int):
        return next(self.packets_from(key))[0]

    def packets_from(self, key: int) -> Iterator[tuple[object, int]]:
        target = int(self.decode[key])
        keys_before = self.keyframes[self.keyframes <= key][::-1]
        # Try the keyframe's own pts, then its dts (MP4 seeks by dts), then earlier keyframes.
        candidates = [self.pts[target], self.dts[target]]
        candidates += [self.dts[self.decode[k]] for k in keys_before[1:].tolist()]
        candidates.append(self.stream.start_time or 0)
        for timestamp in candidates:
            _seek(self.container, self.stream, timestamp)
            packets = _real_packets(self.container, self.stream)
            first = True
            for packet in packets:
                position = self.pts_to_decode.get(packet.pts)
                if position is None:
                    continue
                if first and position > target:
                    break  # overshot: try an earlier timestamp
                first = False
                if position >= target:
                    yield packet, int(self.display[position])
                    for later in packets:
                        display = self.pts_to_display.get(later.pts)
                        if display is not None:
                            yield later, display
                    return
            else:
                return
        raise VideoError(f"cannot seek to frame {key}", source=str(self.container.name))
