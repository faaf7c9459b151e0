"""Photos of gifts that arrived and of pairing updates.

A phone photo carries metadata: EXIF (often the GPS position of the
household's home), XMP, a JPEG comment (one held "Home of household H…"),
an ICC profile. All of it is private or useless here, so every upload is
decoded, checked to be a real image, and re-encoded as a new JPEG built
from its pixels alone, shrunk to at most 1600 px so that it loads on a slow
phone.

Decoding costs memory in proportion to the pixels, not the file: a 116 KB
PNG can hold 40 million pixels (160 MB once decoded). The pixel count is
read from the header and refused above ``PHOTO_MAX_PIXELS`` before anything
is decoded, Pillow's own bomb limit is set to the same figure as a backstop,
and a JPEG is decoded already scaled down (``draft``: the decoder skips the
detail it would throw away).
"""

import io
import uuid

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils.translation import gettext as _
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

MAX_SIDE = 1600
MAX_PIXELS = settings.PHOTO_MAX_PIXELS
# Pillow warns above this figure and refuses at twice it, whoever opens an image.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _too_many_pixels(width: int, height: int) -> ValidationError:
    return ValidationError(
        _(
            "The photo has %(have)s million pixels; the limit is %(limit)s million. "
            "Take it at a lower resolution or make it smaller, then upload it again."
        )
        % {"have": round(width * height / 1_000_000, 1), "limit": round(MAX_PIXELS / 1_000_000, 1)}
    )


def _to_srgb(image: Image.Image) -> Image.Image:
    """The pixels in sRGB, so that the profile can be dropped without the
    colours shifting; an unreadable profile is simply dropped."""
    icc = image.info.get("icc_profile")
    if not icc:
        return image.convert("RGB")
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image.convert("RGB")


def clean_photo(upload) -> ContentFile:
    """The upload re-encoded as a metadata-free JPEG of at most MAX_SIDE px,
    or a ValidationError saying what is wrong with it."""
    if upload.size > settings.MAX_UPLOAD_BYTES:
        raise ValidationError(
            _("The photo is too large; the limit is %(mb)s MB.") % {"mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024)}
        )
    try:
        upload.seek(0)
        with Image.open(upload) as probe:  # reads the header only
            if probe.width * probe.height > MAX_PIXELS:
                raise _too_many_pixels(probe.width, probe.height)
            probe.verify()
        upload.seek(0)
        with Image.open(upload) as image:
            # JPEG: decode at 1/2, 1/4 or 1/8 scale, as long as that still
            # covers the size the photo is shrunk to.
            scale = min(1.0, MAX_SIDE / max(image.size))
            image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            image = ImageOps.exif_transpose(image)
            image = _to_srgb(image)
            # A new image of the pixels alone: nothing of the file's info
            # (EXIF, XMP, comment, profile) can reach the encoder.
            clean = Image.new("RGB", image.size)
            clean.paste(image)
            out = io.BytesIO()
            clean.save(out, format="JPEG", quality=82, optimize=True)
    except Image.DecompressionBombError:
        raise ValidationError(_("The photo has too many pixels.")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValidationError(_("This file is not a photo we can read. Upload a JPEG or PNG image.")) from None
    return ContentFile(out.getvalue(), name=f"{uuid.uuid4().hex}.jpg")


class PhotoField(forms.ImageField):
    """An image upload cleaned by :func:`clean_photo`: its value is the
    re-encoded JPEG. Django's ImageField would decode the file first with
    its own checks; this one reads the header before anything else."""

    def to_python(self, data):
        upload = forms.FileField.to_python(self, data)
        return None if upload is None else clean_photo(upload)
