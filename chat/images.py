"""What a file is, told from its bytes; and the cleaned copies of images that we serve.

Images are re-encoded with Pillow: orientation applied, every metadata block (EXIF with its
location, XMP, comments) dropped, size bounded. Decompression bombs are refused from the header,
before any pixel is decoded: the pixels of every frame together (an animation of many large
frames is as costly as one huge image) and the number of frames are bounded.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import filetype
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from hobbies.errors import Invalid, TooLarge

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# The one Pillow format each image type may open as (a JPEG may also open as MPO, several
# pictures in one file, of which only the first is kept).
PILLOW_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
# Formats whose frames are an animation (kept as one); the frames of others are dropped.
ANIMATED_FORMATS = frozenset({"PNG", "GIF", "WEBP"})
# Text that a browser would run or render as a document; never served inline, and only stored
# if an operator adds these types to ATTACHMENT_ALLOWED_TYPES. Looked for anywhere in the sniffed
# head (lower-cased), not only at its start: a comment or a line of text before a tag does not
# stop a browser that opens a saved copy as a page.
MARKUP_PATTERNS = (
    (re.compile(rb"<svg[\s/>]"), "image/svg+xml"),
    (
        re.compile(
            rb"<(?:!doctype\s+html|html|head|body|script|iframe|frame|frameset|object|embed|"
            rb"applet|style|link|meta|base|form|img|image|video|audio|source|input|button|"
            rb"textarea|select|details|marquee|math|template|title|a|b|p|br|div|span|font|"
            rb"table|h1)[\s/>]"
            # any element with an event handler (`<x-card onmouseover=...>`)
            rb"|<[a-z][^<>]*?[\s/\"']on[a-z]+\s*="
        ),
        "text/html",
    ),
    (
        re.compile(
            rb"<\?xml[\s?]|<!doctype\s|<!entity\s|<!\[cdata\[|xmlns\s*[:=]"
            rb"|<[a-z][\w.-]*:[a-z][\w.-]*[\s/>]"
        ),
        "application/xml",
    ),
)
MARKUP_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "application/xml", "text/xml"}
)
TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-zip-compressed": "application/zip",
    "audio/mp3": "audio/mpeg",
}
THUMBNAIL_TYPE = "image/webp"


def sniff(head: bytes) -> str:
    """The content type of a file from its first bytes."""
    kind = filetype.guess(head)
    if kind is not None:
        return str(kind.mime)
    text = head.lower()
    for pattern, mime in MARKUP_PATTERNS:
        if pattern.search(text):
            return mime
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is still text.
            if exc.start < len(head) - 4:
                return "application/octet-stream"
        return "text/plain"
    return "application/octet-stream"


def normalize_type(content_type: str) -> str:
    base = content_type.split(";", 1)[0].strip().lower()
    return TYPE_ALIASES.get(base, base)


def types_agree(declared: str, detected: str) -> bool:
    """Whether what the browser said the file is matches what its content is."""
    declared = normalize_type(declared)
    if declared in ("", "application/octet-stream") or declared == detected:
        return True
    # A page or drawing stored as text would still open as one once saved under its name.
    return (
        declared.startswith("text/") and declared not in MARKUP_TYPES and detected == "text/plain"
    )


@dataclass(frozen=True)
class Processed:
    """The cleaned full-size image (None: serve the original as is) and its thumbnail."""

    full: bytes | None
    full_type: str
    width: int
    height: int
    thumbnail: bytes
    thumbnail_width: int
    thumbnail_height: int


def process(data: bytes, content_type: str) -> Processed:
    """Check an uploaded image and make the copies we serve. Raises `Invalid` or `TooLarge`."""
    if content_type == "image/webp":
        # libwebp allocates the whole canvas as soon as the file is opened.
        _check_pixels(_webp_canvas(data), 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[content_type]])
            frames = getattr(image, "n_frames", 1)  # read from headers, nothing decoded
            _check_pixels(image.size, frames)
            image.load()
            animated = frames > 1 and image.format in ANIMATED_FORMATS
            upright = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge("This image is too large to open.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise Invalid("This image is damaged or not really an image.") from None
    upright.info = {}
    full: bytes | None
    full_type = content_type
    if animated and content_type == "image/gif":
        full = None  # GIF carries no EXIF; re-encoding would lose the animation
    elif animated:
        full = _encode_animated_webp(image)
        full_type = "image/webp"
    else:
        bounded = _bounded(upright, settings.ATTACHMENT_IMAGE_MAX_SIDE)
        full = _encode(bounded, content_type)
        width, height = bounded.size
    if full is None or animated:
        width, height = upright.size
    thumb = _bounded(upright, settings.ATTACHMENT_THUMBNAIL_SIDE)
    return Processed(
        full=full,
        full_type=full_type,
        width=width,
        height=height,
        thumbnail=_encode(thumb, THUMBNAIL_TYPE),
        thumbnail_width=thumb.width,
        thumbnail_height=thumb.height,
    )


def _check_pixels(size: tuple[int, int] | None, frames: int) -> None:
    """Refuse an image whose frames, all decoded, would pass the limits."""
    if frames > settings.ATTACHMENT_MAX_IMAGE_FRAMES:
        raise TooLarge(
            f"This image has {frames:,} frames; at most "
            f"{settings.ATTACHMENT_MAX_IMAGE_FRAMES:,} frames are allowed."
        )
    if size is None:
        return
    width, height = size
    if frames * width * height > settings.ATTACHMENT_MAX_IMAGE_PIXELS:
        shape = f"{width}x{height} pixels"
        if frames > 1:
            shape = f"{frames} frames of {width}x{height}"
        raise TooLarge(
            f"This image is {shape}; at most "
            f"{settings.ATTACHMENT_MAX_IMAGE_PIXELS:,} pixels are allowed in all."
        )


def _webp_canvas(data: bytes) -> tuple[int, int] | None:
    """The canvas size a WebP file declares in its first chunk (None: not one we can read)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return _le(data[24:27]) + 1, _le(data[27:30]) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return _le(data[26:28]) & 0x3FFF, _le(data[28:30]) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = _le(data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _le(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def _bounded(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image  # metadata already cleared by the caller
    copy = image.copy()
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    copy.info = {}
    return copy


def _encode(image: Image.Image, content_type: str) -> bytes:
    out = io.BytesIO()
    if content_type == "image/jpeg":
        image.convert("RGB").save(out, "JPEG", quality=88, optimize=True)
    elif content_type == "image/png":
        image.save(out, "PNG")
    elif content_type == "image/gif":
        image.save(out, "GIF")
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA")
        image.save(out, "WEBP", quality=82, method=4)
    return out.getvalue()


def _encode_animated_webp(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.info = {k: v for k, v in image.info.items() if k in ("duration", "loop")}
    image.save(out, "WEBP", save_all=True, quality=82)
    return out.getvalue()
