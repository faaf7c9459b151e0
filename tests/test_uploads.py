"""Finding 10 of issue 14: a photo with too many pixels is refused from its
header with a clear message, before it is decoded; a JPEG is decoded at a
reduced scale; nothing of the file's metadata survives the re-encoding."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from donations import photos
from donations.forms import ConfirmReceiptForm, PairingUpdateForm


def png(width, height) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def jpeg_with_metadata(size=(2400, 1800)) -> bytes:
    image = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[0x010E] = "Home of household H7K2M9QX3"  # ImageDescription
    exif[0x8825] = {2: (30, 40, 50)}  # GPSInfo: latitude
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">Home of household H7K2M9QX3</x:xmpmeta>'
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"Home of household H7K2M9QX3", xmp=xmp)
    return out.getvalue()


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def upload(data, name="photo.jpg"):
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


@pytest.mark.parametrize("form_class", [ConfirmReceiptForm, PairingUpdateForm])
def test_a_small_png_of_forty_million_pixels_is_refused_with_a_clear_message(form_class):
    data = png(6300, 6300)
    assert len(data) < 200_000  # the file is small; its pixels are not

    form = form_class({"quantity": 1, "text": "到了"}, {"photo": upload(data, "bomb.png")})

    assert not form.is_valid()
    assert "million pixels" in form.errors["photo"][0] and "24" in form.errors["photo"][0]


def test_the_pixels_are_refused_before_anything_is_decoded(monkeypatch):
    bomb = upload(png(6300, 6300), "bomb.png")

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "verify", no_decoding, raising=False)

    with pytest.raises(Exception) as refused:
        photos.clean_photo(bomb)

    assert "million pixels" in str(refused.value)


def test_a_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    sizes = []
    original = JpegImageFile.draft

    def draft(self, mode, size):
        result = original(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", draft)

    photos.clean_photo(upload(jpeg_with_metadata((4000, 3000))))

    assert sizes and sizes[0] == (2000, 1500)  # half scale: the decoder never built 12 million pixels


def test_every_metadata_segment_is_dropped():
    data = jpeg_with_metadata()
    assert b"Home of household" in data

    cleaned = photos.clean_photo(upload(data)).read()

    assert b"Home of household" not in cleaned
    with Image.open(io.BytesIO(cleaned)) as image:
        assert "comment" not in image.info and "xmp" not in image.info and "icc_profile" not in image.info
        assert not image.getexif()
        assert max(image.size) == photos.MAX_SIDE


def test_a_photo_with_a_colour_profile_is_converted_and_the_profile_dropped():
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 200, 30)).save(out, format="JPEG", icc_profile=profile)

    cleaned = photos.clean_photo(upload(out.getvalue())).read()

    with Image.open(io.BytesIO(cleaned)) as image:
        assert "icc_profile" not in image.info and image.mode == "RGB"
