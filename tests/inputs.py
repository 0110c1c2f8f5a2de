"""Files of every kind people send, generated from one page of known text, and how well a reading matches it."""
from __future__ import annotations

import difflib
import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image

import drawing
from bench import corpus

ROOT = Path(__file__).resolve().parent.parent
KNOWN_LINES = [
    "Quarterly Statement",
    "Northwind Traders Ltd, 45 Harbour Road",
    "Account number 4471-2093",
    "Opening balance 1,250.00",
    "Payment received 300.00",
    "Closing balance 950.00",
    "Please keep this letter for your records.",
]
KNOWN_TEXT = " ".join(KNOWN_LINES)


def known_page(size=(1275, 760)) -> Image.Image:
    return drawing.draw_page(KNOWN_LINES, size=size, margin=80)


def accuracy(text: str, truth: str = KNOWN_TEXT) -> float:
    """difflib ratio of the whitespace-normalised texts."""
    return difflib.SequenceMatcher(None, " ".join(text.split()), " ".join(truth.split()), autojunk=False).ratio()


def raw_tesseract(data: bytes, tmp: Path, name: str) -> str | None:
    """`tesseract FILE stdout` on the very bytes the service gets; None when tesseract cannot read the file."""
    path = tmp / name
    path.write_bytes(data)
    run = subprocess.run(["tesseract", str(path), "stdout"], capture_output=True,
                         env={**os.environ, "OMP_THREAD_LIMIT": "1"}, timeout=120)
    return run.stdout.decode("utf-8", "replace") if run.returncode == 0 else None


def corpus_dir() -> Path | None:
    """The shared corpus of real documents (DOCPROC_CORPUS, default ../shared/corpus), or None when absent."""
    path = Path(os.environ.get("DOCPROC_CORPUS") or ROOT.parent / "shared" / "corpus")
    return path if path.is_dir() else None


def save(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16(image: Image.Image, *, rgb: bool, low: int = 0, high: int = 65535) -> bytes:
    """A 16-bit gray or RGB (RGB48) PNG of an 8-bit page, its range mapped to low..high."""
    gray = image.convert("L").tobytes()
    width, height = image.size
    lut = [struct.pack(">H", low + (high - low) * v // 255) * (3 if rgb else 1) for v in range(256)]
    rows = b"".join(b"\x00" + b"".join(lut[v] for v in gray[y * width:(y + 1) * width]) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2 if rgb else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows, 6)) + _chunk(b"IEND", b"")


def transparent(page: Image.Image, mode: str) -> Image.Image:
    """Ink on a fully transparent background: what a naive convert turns into a black page."""
    alpha = page.point(lambda v: 255 - v)  # ink opaque, paper transparent
    if mode == "LA":
        return Image.merge("LA", (Image.new("L", page.size, 0), alpha))
    rgba = Image.merge("RGBA", (*[Image.new("L", page.size, 0)] * 3, alpha))
    if mode == "P":
        return rgba.quantize(colors=16, method=Image.Quantize.FASTOCTREE)
    return rgba


def image_files(page: Image.Image) -> dict[str, bytes]:
    """One file per image format, compression and mode the service takes, all of the same page."""
    bits = page.convert("1")
    rgb = page.convert("RGB")
    files = {
        "tiff-none.tif": save(page, "TIFF", compression="raw"),
        "tiff-lzw.tif": save(page, "TIFF", compression="tiff_lzw"),
        "tiff-deflate.tif": save(page, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-packbits.tif": save(page, "TIFF", compression="packbits"),
        "tiff-zstd.tif": save(page, "TIFF", compression="zstd"),
        "tiff-jpeg.tif": save(rgb, "TIFF", compression="jpeg"),
        "tiff-g3.tif": save(bits, "TIFF", compression="group3"),
        "tiff-g4.tif": save(bits, "TIFF", compression="group4"),
        "tiff-g4-fillorder2.tif": drawing.tiff_variant(bits, compression="group4", fill_order=2),
        "tiff-1bit-fillorder2.tif": drawing.tiff_variant(bits, fill_order=2),
        "tiff-tiled.tif": drawing.tiff_variant(page, tile=256, compression="deflate"),
        "tiff-planar.tif": drawing.tiff_variant(rgb, planar=True, compression="deflate"),
        "bigtiff.tif": drawing.tiff_variant(page, big=True, tile=512),
        "tiff-cmyk.tif": save(page.convert("CMYK"), "TIFF", compression="tiff_lzw"),
        "tiff-mode-I.tif": save(page.convert("I").point(lambda v: v * 200 + 1000), "TIFF"),  # 1000..52000
        "tiff-mode-F.tif": save(page.convert("F").point(lambda v: v / 255.0), "TIFF"),  # samples 0..1
        "png-1bit.png": save(bits, "PNG"),
        # Real 16-bit scans do not reach 0: ink at 2500 of 65535 is still far above 8-bit white.
        "png-16bit.png": png16(page, rgb=False, low=2500, high=62000),
        "png-12bit-range.png": png16(page, rgb=False, low=150, high=4000),  # a 12-bit scanner's values
        "png-rgb48.png": png16(page, rgb=True),
        "png-LA.png": save(transparent(page, "LA"), "PNG"),
        "png-P-transparent.png": save(transparent(page, "P"), "PNG"),
        "png-RGBA.png": save(transparent(page, "RGBA"), "PNG"),
        "jpeg-cmyk.jpg": save(page.convert("CMYK"), "JPEG", quality=92),
        "gif.gif": save(page, "GIF"),
        "jpeg2000.jp2": save(page, "JPEG2000"),
        "webp.webp": save(page, "WEBP", lossless=True),
        "bmp.bmp": save(page, "BMP"),
        "heic.heic": _heic(rgb),
    }
    return files


def _heic(image: Image.Image) -> bytes:
    from pillow_heif import from_pillow

    buf = io.BytesIO()
    from_pillow(image).save(buf, quality=92)
    return buf.getvalue()


# -- PDFs --------------------------------------------------------------------------------------
text_pdf = corpus.text_pdf  # born-digital PDFs: the benchmark makes them too
def encrypted(pdf: bytes, *, user_password: str) -> bytes:
    """The PDF encrypted by pypdf: with an empty user password it opens without one (owner password only)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")  # AES would need the cryptography package
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def filled_form(labels: list[str], values: dict[str, str], *, size=(612, 792), font_size=14) -> bytes:
    """A born-digital form: the labels as text, an AcroForm text field right of each, filled with values."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import (ArrayObject, BooleanObject, DictionaryObject, FloatObject, NameObject, NumberObject,
                               TextStringObject)

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf([labels], size=size, font_size=font_size))))
    page = writer.pages[0]
    helv = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    fields = ArrayObject()
    for i, label in enumerate(labels):
        name = label.rstrip(":")
        if name not in values:
            continue
        y = size[1] - 72 - i * font_size * 1.6
        field = DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Tx"), NameObject("/T"): TextStringObject(name),
            NameObject("/V"): TextStringObject(values[name]), NameObject("/F"): NumberObject(4),
            NameObject("/DA"): TextStringObject(f"/Helv {font_size} Tf 0 g"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (250, y - 4, 540, y + font_size + 2)]),
            NameObject("/P"): page.indirect_reference,
        })
        ref = writer._add_object(field)
        page.setdefault(NameObject("/Annots"), ArrayObject()).append(ref)
        fields.append(ref)
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject({
        NameObject("/Fields"): fields, NameObject("/NeedAppearances"): BooleanObject(True),
        NameObject("/DA"): TextStringObject(f"/Helv {font_size} Tf 0 g"),
        NameObject("/DR"): DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/Helv"): helv})}),
    })
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
