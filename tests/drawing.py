"""Test pages drawn with Pillow's bundled font, and the file formats clients upload."""
from __future__ import annotations

import io
import re
import struct
import zlib

from PIL import Image, ImageDraw, ImageFont

PAGE_SIZE = (1275, 1650)  # US letter at 150 dpi


def draw_page(lines: list[str], *, size: tuple[int, int] = PAGE_SIZE, font_size: int = 30,
              margin: int = 100, line_gap: float = 1.6) -> Image.Image:
    """A white grayscale page with the lines in black; runs of "___" become ruled blanks."""
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=font_size)
    y = margin
    for line in lines:
        x = margin
        # The bundled font draws "_" as separate dashes, which tesseract's layout analysis
        # drops together with the label; printed forms have solid lines, so draw those.
        for part in re.split(r"(_{3,})", line):
            if part.startswith("___"):
                width = font.getlength(part)
                draw.line([(x, y + font_size), (x + width, y + font_size)], fill=0, width=2)
                x += width
            elif part:
                draw.text((x, y), part, font=font, fill=0)
                x += font.getlength(part)
        y += round(font_size * line_gap)
    return page


def rotated(page: Image.Image, degrees: int) -> Image.Image:
    """The page turned counter-clockwise, as a badly fed scanner would deliver it."""
    return page.rotate(degrees, expand=True, fillcolor=255)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(image: Image.Image, *, orientation: int | None = None, quality: int = 90) -> bytes:
    """JPEG bytes, optionally with an EXIF Orientation tag (274)."""
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[274] = orientation
    image.convert("RGB").save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def tiff_bytes(images: list[Image.Image]) -> bytes:
    """A multi-page TIFF, one frame per image."""
    buf = io.BytesIO()
    images[0].save(buf, "TIFF", save_all=True, append_images=images[1:], compression="tiff_lzw")
    return buf.getvalue()


def pdf_bytes(images: list[Image.Image], *, resolution: float = 150.0) -> bytes:
    """A PDF with one image page per image, sized so that `resolution` dpi gives the pixels back."""
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=resolution)
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid, tiny PNG of a huge all-black 1-bit image: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def receipt_lines() -> list[str]:
    return [
        "ACME Store",
        "123 Main Street, Springfield",
        "Date: 2024-03-15",
        "Receipt No: 10023",
        "",
        "Coffee beans 1kg        $18.00",
        "Milk 2L                 $3.50",
        "Croissants x3           $9.00",
        "Subtotal                $30.50",
        "Tax                     $2.00",
        "Total                   $32.50",
        "",
        "Paid by card. Thank you for shopping!",
        "Email: info@acme-store.com",
        "Phone: +1 555-123-4567",
    ]


def invoice_lines() -> list[str]:
    return [
        "INVOICE",
        "Northwind Traders Ltd",
        "45 Harbour Road, Leeds",
        "",
        "Invoice Number: INV-2024-0042",
        "Invoice Date: 15/03/2024",
        "Due Date: 14 Apr 2024",
        "Bill To: Contoso GmbH",
        "",
        "Consulting services     EUR 1,200.00",
        "Travel expenses         EUR 150.00",
        "VAT 20%                 EUR 270.00",
        "Amount Due: EUR 1,620.00",
        "",
        "Contact: billing@northwind.co.uk",
    ]


def blank_form_lines() -> list[str]:
    return [
        "Membership Application Form",
        "",
        "Full Name: ____________________",
        "Date of Birth: ________________",
        "Email: ________________________",
        "Telephone: ____________________",
        "Address: ______________________",
        "Member Type: Standard",
        "[ ] I agree to the terms",
    ]


def letter_lines() -> list[str]:
    return [
        "Jane Doe",
        "12 Oak Road, Bristol",
        "March 15, 2024",
        "",
        "Dear Mr. Smith,",
        "",
        "Thank you for your letter about the lease.",
        "I confirm that I will move out on 30 April 2024.",
        "Please send the deposit to my bank account.",
        "",
        "Sincerely,",
        "Jane Doe",
    ]


def tiff_variant(image: Image.Image, *, compression: str = "raw", tile: int | None = None, planar: bool = False,
                 fill_order: int = 1, big: bool = False) -> bytes:
    """A one-page TIFF in layouts Pillow cannot write: tiled, planar, FillOrder 2, BigTIFF.

    compression: "raw", "deflate" (zlib per strip or tile) or "group4" (1-bit only; the G4 data of
    Pillow's own encoding, re-wrapped). Fill order 2 (least significant bit first) reverses the
    bits of every data byte, as fax hardware writes them.
    """
    mode = image.mode
    bands = {"1": 1, "L": 1, "RGB": 3}[mode]
    bits = 1 if mode == "1" else 8
    width, height = image.size
    if compression == "group4":
        assert mode == "1" and not tile and not planar
        g4 = io.BytesIO()
        image.save(g4, "TIFF", compression="group4")
        with Image.open(io.BytesIO(g4.getvalue())) as parsed:
            offsets, counts = parsed.tag_v2[273], parsed.tag_v2[279]
            photometric, rows_per_strip = parsed.tag_v2[262], parsed.tag_v2[278]
        raw = g4.getvalue()
        chunks = [raw[o:o + c] for o, c in zip(offsets, counts)]
        code = 4
    else:
        planes = [image.getchannel(i) for i in range(bands)] if planar else [image]
        chunks = []
        for plane in planes:
            chunks += _tiff_chunks(plane, tile or 0, bits, 1 if planar else bands)
        rows_per_strip = height if not tile else None
        if compression == "deflate":
            chunks = [zlib.compress(c) for c in chunks]
        code = {"raw": 1, "deflate": 8}[compression]
        photometric = 2 if mode == "RGB" else 1
    if fill_order == 2:
        table = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
        chunks = [c.translate(table) for c in chunks]
    return _tiff_file(width, height, bands, bits, code, chunks, tile=tile, planar=planar, fill_order=fill_order,
                      big=big, rows_per_strip=rows_per_strip, photometric=photometric)


def _tiff_chunks(plane: Image.Image, tile: int, bits: int, samples: int) -> list[bytes]:
    if not tile:
        return [plane.tobytes()]
    out = []
    for top in range(0, plane.height, tile):
        for left in range(0, plane.width, tile):
            piece = Image.new(plane.mode, (tile, tile), 255 if plane.mode != "RGB" else (255, 255, 255))
            piece.paste(plane.crop((left, top, min(left + tile, plane.width), min(top + tile, plane.height))), (0, 0))
            out.append(piece.tobytes())
    return out


def _tiff_file(width, height, bands, bits, compression, chunks, *, tile, planar, fill_order, big, rows_per_strip,
               photometric) -> bytes:
    header_size = 16 if big else 8
    data = b"".join(chunks)
    offsets, pos = [], header_size
    for c in chunks:
        offsets.append(pos)
        pos += len(c)
    extra = bytearray()  # arrays that do not fit in an entry go after the image data
    extra_base = header_size + len(data)
    entries = []
    offset_type, offset_fmt = (16, "Q") if big else (4, "I")
    inline = 8 if big else 4

    def add(tag, typ, values):
        fmt = {3: "H", 4: "I", 16: "Q"}[typ]
        body = struct.pack(f"<{len(values)}{fmt}", *values)
        if len(body) <= inline:
            entries.append((tag, typ, len(values), body.ljust(inline, b"\0")))
        else:
            while (extra_base + len(extra)) % 2:
                extra.append(0)
            where = extra_base + len(extra)
            extra.extend(body)
            entries.append((tag, typ, len(values), struct.pack(f"<{offset_fmt}", where)))

    add(256, 4, [width])
    add(257, 4, [height])
    add(258, 3, [bits] * bands)
    add(259, 3, [compression])
    add(262, 3, [photometric])
    if fill_order != 1:
        add(266, 3, [fill_order])
    add(277, 3, [bands])
    add(284, 3, [2 if planar else 1])
    if tile:
        add(322, 3, [tile])
        add(323, 3, [tile])
        add(324, offset_type, offsets)
        add(325, offset_type, [len(c) for c in chunks])
    else:
        add(273, offset_type, offsets)
        add(278, 4, [rows_per_strip])
        add(279, offset_type, [len(c) for c in chunks])
    entries.sort()
    while (extra_base + len(extra)) % 2:
        extra.append(0)
    ifd_at = extra_base + len(extra)
    if big:
        head = b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd_at)
        ifd = struct.pack("<Q", len(entries)) + b"".join(struct.pack("<HHQ", t, ty, n) + v for t, ty, n, v in entries)
        ifd += struct.pack("<Q", 0)
    else:
        head = b"II" + struct.pack("<HI", 42, ifd_at)
        ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", t, ty, n) + v for t, ty, n, v in entries)
        ifd += struct.pack("<I", 0)
    return head + data + bytes(extra) + ifd
