"""Is an upload really an image? Decided from its bytes (never the declared type), with the
pixel count checked from the header before anything is decoded, so a decompression bomb is
refused without being inflated."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ACCEPTED = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "GIF": ("image/gif", "gif"),
    "WEBP": ("image/webp", "webp"),
}


class NotAnImage(ValueError):
    pass


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    extension: str
    width: int
    height: int


def sniff(data: bytes, max_pixels: int) -> ImageInfo:
    if not data:
        raise NotAnImage("the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format or ""
                width, height = image.size
                if kind not in ACCEPTED:
                    raise NotAnImage(f"{kind or 'this'} format is not accepted (JPEG, PNG, GIF, WebP)")
                if width <= 0 or height <= 0 or width * height > max_pixels:
                    raise NotAnImage(f"{width}x{height} is more pixels than the limit of {max_pixels}")
                image.verify()  # structure and checksums, without decoding the pixels
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise NotAnImage("the file is not a readable image") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if isinstance(exc, NotAnImage):
                raise
            raise NotAnImage(f"the image is damaged: {exc}") from exc
    content_type, extension = ACCEPTED[kind]
    return ImageInfo(content_type, extension, width, height)
