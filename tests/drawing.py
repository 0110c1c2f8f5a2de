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
