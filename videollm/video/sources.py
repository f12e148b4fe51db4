"""Where media comes from: turn a user-supplied source into local bytes or a local path, safely.

Accepted sources: a path (str or Path) to a video file, an animated GIF or a directory of numbered
frames; `file://` URLs; `data:video/...;base64,` (and `data:image/gif`) URLs; raw bytes; and
`http(s)://` URLs, only for hosts in `allowed_domains` (no request at all otherwise, redirects to
other hosts refused), with a timeout and a byte cap. When `allowed_local_root` is given (servers
must give it), paths and `file://` URLs must resolve, symlinks followed, to a file under it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from videollm.video.limits import MediaLimits
from videollm.video.types import VideoError

Source = str | os.PathLike | bytes | bytearray | memoryview
MediaKind = Literal["container", "gif", "frames"]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Media:
    """A source made local: exactly one of `path` (file or frame directory) and `data` is set."""

    name: str  # how errors refer to it: the path, the URL, or a short description of the bytes
    kind: MediaKind
    path: Path | None = None
    data: bytes | None = None


class Deadline:
    """A wall-clock budget shared by fetching and decoding, checked between steps."""

    def __init__(self, timeout_s: float):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.timeout_s = timeout_s
        self.expires = time.monotonic() + timeout_s

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def check(self, source: str, what: str = "decoding") -> None:
        if time.monotonic() > self.expires:
            raise VideoError(
                f"{what} did not finish within timeout_s={self.timeout_s:g} s; sample fewer frames, "
                "pass a smaller video or raise timeout_s",
                source=source,
                status=413,
            )


def open_source(
    source: Source,
    *,
    limits: MediaLimits,
    allowed_local_root: str | os.PathLike | None = None,
    allowed_domains: Sequence[str] = (),
    deadline: Deadline | None = None,
) -> Media:
    """Resolve `source` to `Media`, enforcing access rules and `limits.max_bytes`."""
    deadline = deadline or Deadline(300.0)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return _from_bytes(data, f"<{len(data)} bytes>", limits)
    if isinstance(source, os.PathLike):
        return _local(Path(source), str(source), limits, allowed_local_root)
    if not isinstance(source, str):
        raise VideoError(f"unsupported video source type {type(source).__name__}; pass a path, URL or bytes")
    if not source:
        raise VideoError("empty video source string; pass a path, URL or bytes")
    scheme = _SCHEME.match(source)
    scheme = scheme.group(1).lower() if scheme and len(scheme.group(1)) > 1 else None  # C: is a drive
    if scheme is None:
        return _local(Path(source), source, limits, allowed_local_root)
    if scheme == "data":
        return _from_data_url(source, limits)
    if scheme == "file":
        return _local(_file_url_path(source), source, limits, allowed_local_root)
    if scheme in ("http", "https"):
        data = fetch_url(source, allowed_domains=allowed_domains, limits=limits, deadline=deadline)
        return _from_bytes(data, source, limits)
    raise VideoError(
        f"unsupported URL scheme {scheme!r}; use a local path, file://, data:video/...;base64, or http(s)://",
        source=_short(source),
    )


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sniff(head: bytes) -> MediaKind:
    return "gif" if head[:6] in (b"GIF87a", b"GIF89a") else "container"


def _from_bytes(data: bytes, name: str, limits: MediaLimits) -> Media:
    if not data:
        raise VideoError("empty input (0 bytes)", source=name)
    limits.check_bytes(len(data), name)
    return Media(name=name, kind=_sniff(data[:6]), data=data)


def _from_data_url(url: str, limits: MediaLimits) -> Media:
    name = _short(url, 48)
    header, sep, payload = url.partition(",")
    if not sep:
        raise VideoError("malformed data URL: no ',' before the payload", source=name)
    params = header[len("data:") :].split(";")
    media_type = params[0].strip().lower()
    if "base64" not in (p.strip().lower() for p in params[1:]):
        raise VideoError("data URL must be base64-encoded: data:video/mp4;base64,...", source=name)
    if not (media_type.startswith("video/") or media_type in ("image/gif", "application/octet-stream")):
        raise VideoError(
            f"data URL media type {media_type or '(none)'!r} is not a video; use data:video/mp4;base64,...",
            source=name,
            status=415,
        )
    payload = "".join(payload.split())  # base64 wrapped at 76 columns is common
    limits.check_bytes(len(payload) * 3 // 4, name)  # check before decoding: no huge allocation
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VideoError(f"invalid base64 in data URL payload ({e})", source=name) from None
    return _from_bytes(data, f"data:{media_type} ({len(data)} bytes)", limits)


def _file_url_path(url: str) -> Path:
    from urllib.request import url2pathname

    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise VideoError(
            f"file:// URL names host {parts.netloc!r}; only local files are supported", source=url
        )
    return Path(url2pathname(parts.path))


def _local(path: Path, name: str, limits: MediaLimits, allowed_local_root: str | os.PathLike | None) -> Media:
    if allowed_local_root is not None:  # before any existence check: no probing outside the root
        _check_under_root(path.expanduser().resolve(strict=False), allowed_local_root, name)
    try:
        resolved = path.expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise VideoError("no such file or directory", source=name) from None
    except (OSError, RuntimeError) as e:  # symlink loop, permission denied on a parent
        raise VideoError(f"cannot access the path ({e})", source=name) from None
    if allowed_local_root is not None:
        _check_under_root(resolved, allowed_local_root, name)
    try:
        st = resolved.stat()
    except OSError as e:
        raise VideoError(f"cannot access the path ({e.strerror})", source=name) from None
    if stat.S_ISDIR(st.st_mode):
        return Media(name=name, kind="frames", path=resolved)
    if not stat.S_ISREG(st.st_mode):  # FIFOs and devices would block or never end
        raise VideoError("not a regular file (a pipe, socket or device?)", source=name)
    if st.st_size == 0:
        raise VideoError("empty file (0 bytes)", source=name)
    limits.check_bytes(st.st_size, name)
    try:
        with open(resolved, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise VideoError(f"cannot read the file ({e.strerror})", source=name) from None
    return Media(name=name, kind=_sniff(head), path=resolved)


def _check_under_root(resolved: Path, root: str | os.PathLike, name: str) -> None:
    root_resolved = Path(root).expanduser().resolve()
    if not resolved.is_relative_to(root_resolved):
        raise VideoError(
            f"path resolves outside the allowed media root {str(root_resolved)!r} "
            "(after following '..' and symlinks); only files under it may be read",
            source=name,
            status=403,
        )


def check_frame_file(path: Path, root: str | os.PathLike | None, name: str) -> None:
    """A frame inside an allowed frame directory may itself be a symlink out of the root."""
    if root is not None:
        _check_under_root(path.resolve(), root, name)


def host_allowed(host: str | None, allowed_domains: Sequence[str]) -> bool:
    """Exact host match, or a subdomain for entries written `*.example.com` / `.example.com`."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    for entry in allowed_domains:
        entry = entry.lower().strip().rstrip(".")
        if entry.startswith("*."):
            entry = entry[1:]
        if host == entry or (entry.startswith(".") and host.endswith(entry)):
            return True
    return False


def _redirect_handler(allowed_domains: Sequence[str]):
    """urllib follows redirects on its own; this one refuses any that leave the allow-list."""
    from urllib import request as urlrequest

    class AllowListRedirects(urlrequest.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            parts = urllib.parse.urlsplit(newurl)
            if parts.scheme not in ("http", "https") or not host_allowed(parts.hostname, allowed_domains):
                raise VideoError(
                    f"redirect to {_short(newurl)!r} refused: its host is not in allowed_domains",
                    source=req.full_url,
                    status=403,
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return AllowListRedirects()


def fetch_url(url: str, *, allowed_domains: Sequence[str], limits: MediaLimits, deadline: Deadline) -> bytes:
    """GET `url` if its host is allow-listed, bounded by `deadline` and `limits.max_bytes`."""
    host = urllib.parse.urlsplit(url).hostname
    if not host_allowed(host, allowed_domains):
        hint = f"allowed_domains=[{host!r}]" if host else "a URL with a host name"
        raise VideoError(
            f"fetching from host {host!r} is not allowed (remote fetching is off by default); "
            f"to enable it pass {hint}",
            source=url,
            status=403,
        )
    from urllib import error as urlerror
    from urllib import request as urlrequest

    opener = urlrequest.build_opener(_redirect_handler(allowed_domains))
    request = urlrequest.Request(url, headers={"User-Agent": "videollm"})
    try:
        with opener.open(request, timeout=max(deadline.remaining(), 0.001)) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit():
                limits.check_bytes(int(length), url)
            chunks, total = [], 0
            while chunk := response.read1(_CHUNK):
                total += len(chunk)
                limits.check_bytes(total, url)
                deadline.check(url, "downloading")
                chunks.append(chunk)
    except VideoError:
        raise
    except urlerror.HTTPError as e:
        raise VideoError(f"HTTP {e.code} {e.reason} while fetching the video", source=url) from None
    except TimeoutError:
        raise VideoError(
            f"no answer within timeout_s={deadline.timeout_s:g} s while fetching", source=url, status=504
        ) from None
    except urlerror.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise VideoError(
                f"no answer within timeout_s={deadline.timeout_s:g} s while fetching", source=url, status=504
            ) from None
        raise VideoError(f"could not fetch the video ({e.reason})", source=url) from None
    except OSError as e:
        raise VideoError(f"could not fetch the video ({e})", source=url) from None
    data = b"".join(chunks)
    if not data:
        raise VideoError("the server returned an empty body", source=url)
    return data
