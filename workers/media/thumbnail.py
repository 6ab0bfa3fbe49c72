"""The clip's first frame as a JPEG, read back from the finished MP4.

Decoding the written file (not the source) means the image is what a player shows first,
edit list included, and doubles as a check that the MP4 decodes at all.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

JPEG_QUALITY = 3  # mjpeg qscale: 2 is best, 31 worst; 3 is visually lossless for a poster frame


class ThumbnailError(RuntimeError):
    pass


def first_frame_jpeg(mp4: Path) -> bytes:
    try:
        with av.open(str(mp4)) as container:
            for frame in container.decode(video=0):
                return encode_jpeg(frame)
    except av.FFmpegError as exc:
        raise ThumbnailError(f"the exported MP4 does not decode: {exc}") from exc
    raise ThumbnailError("the exported MP4 has no decodable picture")


def encode_jpeg(frame: av.VideoFrame) -> bytes:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = frame.time_base or Fraction(1, 25)
    encoder.qscale = True  # a fixed quantiser, pinned by qmin = qmax below
    encoder.options = {"qmin": str(JPEG_QUALITY), "qmax": str(JPEG_QUALITY)}
    image = frame.reformat(format="yuvj420p")
    image.pts = 0
    packets = [*encoder.encode(image), *encoder.encode(None)]
    if not packets:
        raise ThumbnailError("the JPEG encoder produced nothing")
    return b"".join(bytes(p) for p in packets)
