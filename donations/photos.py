"""Photos of gifts that arrived.

A phone photo carries EXIF data, often with the GPS position of the
household's home, which is private. Every upload is decoded, checked to be
a real image, re-encoded as JPEG without metadata and shrunk to at most
1600 px so that it loads on a slow phone.
"""

import io
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 1600
MAX_PIXELS = 40_000_000


def clean_photo(upload) -> ContentFile:
    if upload.size > settings.MAX_UPLOAD_BYTES:
        raise ValidationError(
            _("The photo is too large; the limit is %(mb)s MB.") % {"mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024)}
        )
    try:
        upload.seek(0)
        with Image.open(upload) as probe:
            if probe.width * probe.height > MAX_PIXELS:
                raise ValidationError(_("The photo has too many pixels."))
            probe.verify()
        upload.seek(0)
        with Image.open(upload) as image:
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB")
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=82, optimize=True)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise ValidationError(_("This file is not a photo we can read. Upload a JPEG or PNG image.")) from None
    return ContentFile(out.getvalue(), name=f"{uuid.uuid4().hex}.jpg")
