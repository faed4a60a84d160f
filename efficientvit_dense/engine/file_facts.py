"""What the data checks need to know about image files without decoding
them: width, height, EXIF orientation and mode, read from the headers once
and remembered by each file's size and modification time (as Ultralytics
caches its label scan), so a second start of the same job reads no header
again. The memory lives under ``$EVD_CACHE_DIR/data_checks`` (default
``~/.cache/efficientvit-dense``), one JSON file per list of files.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import os.path as osp
from dataclasses import dataclass

from PIL import Image

CACHE_VERSION = 3  # facts read by another version are read again
# mmcv's readers (cv2 and Pillow alike) apply an EXIF orientation in any format that carries one: a PNG's eXIf
# chunk too (ImageMagick keeps a phone photo's), which version 2 of the facts left unread.
ORIENTATION_TAG = 0x0112  # EXIF
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 or 270 degrees: width and height trade places


@dataclass(frozen=True)
class ImageFacts:
    width: int  # as stored, before any EXIF rotation
    height: int
    orientation: int  # EXIF orientation, 1 when absent
    mode: str  # PIL's: 'L', 'P', 'RGB', 'I;16', ...

    @property
    def loaded_size(self) -> tuple[int, int]:
        """(width, height) once loaded: mmcv's readers apply the EXIF rotation."""
        if self.orientation in SWAPPING_ORIENTATIONS:
            return self.height, self.width
        return self.width, self.height


@contextlib.contextmanager
def _without_pixel_limit():
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def cache_dir() -> str:
    root = os.environ.get('EVD_CACHE_DIR') or osp.join(
        os.environ.get('XDG_CACHE_HOME') or osp.expanduser('~/.cache'), 'efficientvit-dense')
    return osp.join(root, 'data_checks')


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, from the header alone: a PNG's getexif()
    decodes the pixels to look for an eXIf chunk after them, so a PNG's is
    the chunk read with the header (before the pixels, where writers put it)."""
    if image.format != 'PNG':
        return image.getexif().get(ORIENTATION_TAG, 1)
    exif = Image.Exif()
    if image.info.get('exif'):
        exif.load(image.info['exif'])
    return exif.get(ORIENTATION_TAG, 1)


def _read(path: str) -> ImageFacts | None:
    try:
        # Reading a header decompresses nothing: Pillow's guard against decompression bombs would refuse aerial
        # images above 179 megapixels, which cv2 (mmcv's reader) loads
        with _without_pixel_limit(), Image.open(path) as image:
            orientation = _orientation(image)
            return ImageFacts(image.width, image.height, int(orientation), image.mode)
    except (OSError, ValueError, SyntaxError):  # what Pillow raises for a file it cannot identify or parse
        return None


def image_facts(paths: list[str], name: str) -> dict[str, ImageFacts | None]:
    """The facts of every existing file in ``paths`` (None for one that is
    not a readable image); missing files are left out. ``name`` identifies
    the list (e.g. the annotation file) for the cache."""
    key = hashlib.sha1(osp.abspath(name).encode()).hexdigest()[:16]
    cache_path = osp.join(cache_dir(), f'{key}.json')
    try:
        with open(cache_path) as f:
            cached = json.load(f)
        if cached.get('version') != CACHE_VERSION:
            cached = {}
    except (OSError, ValueError):
        cached = {}
    known = cached.get('files', {})
    facts, fresh, unread = {}, {}, {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = known.get(path)
        if entry is not None and entry[:2] == stamp:
            facts[path] = None if entry[2] is None else ImageFacts(*entry[2])
            fresh[path] = entry
        else:
            unread[path] = stamp
    for path, found in zip(unread, _read_all(list(unread))):
        facts[path] = found
        fresh[path] = [*unread[path], None if found is None else [found.width, found.height, found.orientation,
                                                                  found.mode]]
    if unread or len(fresh) != len(known):
        _write_json(cache_path, dict(version=CACHE_VERSION, files=fresh))
    return facts


PARALLEL_FROM = 2000  # files; below this, starting worker processes costs more than it saves


def _read_all(paths: list[str]) -> list[ImageFacts | None]:
    """:func:`_read` of every path, for a long list on every core but one
    (COCO train2017 has 118k images), which stays with the training run
    starting meanwhile
    (data_checks.BackgroundChecks). The workers are forked, as the data
    loaders' are, and only parse headers."""
    workers = min(len(os.sched_getaffinity(0)) - 1, 16)
    if len(paths) < PARALLEL_FROM or workers < 2:
        return [_read(path) for path in paths]
    with multiprocessing.get_context('fork').Pool(workers) as pool:
        return pool.map(_read, paths, chunksize=500)


def _write_json(path: str, data: dict) -> None:
    """Best effort: a cache that cannot be written only costs time."""
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = f'{path}.{os.getpid()}.partial'
        with open(tmp, 'w') as f:
            json.dump(data, f, separators=(',', ':'))
        os.replace(tmp, path)
    except OSError:
        pass
