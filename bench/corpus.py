"""A generated corpus: letter-size pages at 150 dpi with letters, invoices, receipts and forms."""
from __future__ import annotations

import ctypes
import io
import random
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as c
from PIL import Image, ImageDraw, ImageFont

PAGE_SIZE = (1275, 1650)  # US letter at 150 dpi
MARGIN = 110
KINDS = ("letter", "invoice", "receipt", "form")

_FIRST = ["Jane", "John", "Maria", "Ahmed", "Wei", "Olga", "Pierre", "Sofia", "Liam", "Grace", "Tomas", "Aisha"]
_LAST = ["Doe", "Smith", "Garcia", "Khan", "Chen", "Petrova", "Martin", "Rossi", "Brown", "Okafor", "Novak", "Lee"]
_COMPANIES = ["Northwind Traders Ltd", "Contoso GmbH", "ACME Supplies Inc", "Blue Harbour Logistics",
              "Fabrikam Consulting", "Greenfield Dairy Co", "Litware Systems", "Tailspin Travel",
              "Margie's Travel", "Proseware Labs", "Woodgrove Bank", "Adventure Works"]
_STREETS = ["Oak Road", "Main Street", "Harbour Road", "Station Lane", "King Street", "Mill Lane",
            "Church Street", "Victoria Avenue", "Park Road", "High Street"]
_CITIES = ["Bristol", "Leeds", "Springfield", "Hamburg", "Lyon", "Dublin", "Toronto", "Austin", "Porto", "Graz"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_ITEMS = ["Consulting services", "Travel expenses", "Office chairs", "Printer toner", "Software licence",
          "Coffee beans 1kg", "Milk 2L", "Croissants", "Cleaning supplies", "Delivery charge", "Desk lamp",
          "Paper A4 box", "Network cable 5m", "Monitor 27 inch", "Maintenance visit", "Training day"]
_SUBJECTS = ["the lease of the flat", "your order of last month", "the insurance claim", "the annual review",
             "the delivery schedule", "the outstanding invoice", "the meeting next week", "the new contract"]
_SENTENCES = [
    "Thank you for your letter about {subject}, which reached us on {date}.",
    "We have reviewed the documents you sent and everything appears to be in order.",
    "Please find enclosed a copy of the signed agreement for your records.",
    "The payment of {amount} should arrive in your account within five working days.",
    "If you have any questions, do not hesitate to contact our office at {phone}.",
    "Our team will visit the site on {date} to complete the inspection.",
    "I would be grateful if you could confirm the details by the end of the month.",
    "As discussed on the telephone, the deadline has been moved to {date}.",
    "We regret that the item you ordered is no longer available from our supplier.",
    "A reminder will be sent two weeks before the renewal date of {date}.",
    "The committee approved the proposal at its meeting and thanks you for your patience.",
    "Kindly return the completed form together with a copy of your identity document.",
]
_FIELDS = ["Full Name", "Date of Birth", "Email", "Telephone", "Address", "City", "Postcode", "Occupation",
           "Employer", "Emergency Contact", "Signature", "Date", "Account Number", "Nationality"]


def _name(r: random.Random) -> str:
    return f"{r.choice(_FIRST)} {r.choice(_LAST)}"


def _address(r: random.Random) -> str:
    return f"{r.randint(1, 240)} {r.choice(_STREETS)}, {r.choice(_CITIES)}"


def _date(r: random.Random) -> str:
    return f"{r.choice(_MONTHS)} {r.randint(1, 28)}, {r.randint(2019, 2025)}"


def _money(r: random.Random, lo: float = 2, hi: float = 2500) -> float:
    return round(r.uniform(lo, hi), 2)


def _phone(r: random.Random) -> str:
    return f"+1 555-{r.randint(100, 999)}-{r.randint(1000, 9999)}"


def _wrap(text: str, font, width: float) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and font.getlength(trial) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


def letter_lines(r: random.Random, font, width: float) -> list[str]:
    """A business letter of two to four paragraphs."""
    sender, recipient = _name(r), _name(r)
    lines = [sender, _address(r), _date(r), "", f"Dear {recipient.split()[0]} {recipient.split()[1]},", ""]
    for _ in range(r.randint(2, 4)):
        facts = dict(subject=r.choice(_SUBJECTS), date=_date(r), amount=f"${_money(r):,.2f}", phone=_phone(r))
        paragraph = " ".join(s.format(**facts) for s in r.sample(_SENTENCES, r.randint(3, 5)))
        lines += _wrap(paragraph, font, width) + [""]
    return lines + ["Yours sincerely,", "", sender, f"{r.choice(_COMPANIES)}"]


def invoice_lines(r: random.Random, font, width: float) -> list[str]:
    """An invoice with a header block, eight to sixteen item lines and totals."""
    currency = r.choice(["EUR", "USD", "GBP"])
    lines = ["INVOICE", r.choice(_COMPANIES), _address(r), f"VAT No: GB{r.randint(100000000, 999999999)}", "",
             f"Invoice Number: INV-{r.randint(2019, 2025)}-{r.randint(1, 9999):04d}",
             f"Invoice Date: {_date(r)}", f"Due Date: {_date(r)}", f"Bill To: {r.choice(_COMPANIES)}",
             f"Attn: {_name(r)}, {_address(r)}", "", "Description                 Qty     Unit      Amount"]
    subtotal = 0.0
    for _ in range(r.randint(8, 16)):
        qty, unit = r.randint(1, 12), _money(r, 5, 400)
        subtotal += qty * unit
        lines.append(f"{r.choice(_ITEMS):<26} {qty:>4} {unit:>9.2f} {qty * unit:>11,.2f}")
    tax = subtotal * 0.2
    lines += ["", f"Subtotal: {currency} {subtotal:,.2f}", f"VAT 20%: {currency} {tax:,.2f}",
              f"Amount Due: {currency} {subtotal + tax:,.2f}", "",
              f"Payment to IBAN GB{r.randint(10, 99)} WOOD {r.randint(10000000, 99999999)} within 30 days.",
              f"Contact: billing@{r.choice(_COMPANIES).split()[0].lower()}.com  {_phone(r)}"]
    return lines


def receipt_lines(r: random.Random, font, width: float) -> list[str]:
    """A shop receipt: short lines, prices on the right."""
    lines = [r.choice(_COMPANIES).upper(), _address(r), f"Tel {_phone(r)}", f"Date: {_date(r)}  {r.randint(7, 21)}:{r.randint(0, 59):02d}",
             f"Receipt No: {r.randint(10000, 99999)}   Till {r.randint(1, 9)}", ""]
    total = 0.0
    for _ in range(r.randint(6, 18)):
        price = _money(r, 0.5, 60)
        total += price
        lines.append(f"{r.choice(_ITEMS):<28} ${price:>7.2f}")
    lines += ["", f"Subtotal                     ${total:>7.2f}", f"Tax                          ${total * 0.08:>7.2f}",
              f"Total                        ${total * 1.08:>7.2f}", "",
              f"Paid by card ending {r.randint(1000, 9999)}", "Thank you for shopping with us!"]
    return lines


def form_lines(r: random.Random, font, width: float) -> list[str]:
    """An application form: labelled blanks, some filled, and checkboxes."""
    lines = [f"{r.choice(['Membership', 'Loan', 'Rental', 'Employment', 'Visa'])} Application Form",
             r.choice(_COMPANIES), f"Reference: {r.randint(100000, 999999)}", ""]
    for field in r.sample(_FIELDS, r.randint(8, 14)):
        value = r.choice(["________________________", _name(r), _address(r), _date(r), _phone(r)])
        lines.append(f"{field}: {value}")
    lines += ["", "[ ] I agree to the terms and conditions", "[ ] Send me news by email", "",
              "Please sign and return this form to the office within 14 days."]
    return lines


_MAKERS = {"letter": letter_lines, "invoice": invoice_lines, "receipt": receipt_lines, "form": form_lines}


def draw(lines: list[str], font) -> Image.Image:
    """A white grayscale letter-size page with the lines in black; "___" runs become ruled blanks."""
    page = Image.new("L", PAGE_SIZE, 255)
    canvas = ImageDraw.Draw(page)
    size = font.size
    y = MARGIN
    for line in lines:
        if y > PAGE_SIZE[1] - MARGIN:
            break
        x = MARGIN
        if "____" in line:
            label, _, rest = line.partition("____")
            canvas.text((x, y), label, font=font, fill=0)
            x += font.getlength(label)
            canvas.line([(x, y + size), (x + font.getlength("____" + rest), y + size)], fill=0, width=2)
        else:
            canvas.text((x, y), line, font=font, fill=0)
        y += round(size * 1.5)
    return page


def make_page(seed: int, kind: str | None = None) -> Image.Image:
    """One page; the same seed always gives the same page."""
    r = random.Random(seed)
    kind = kind or KINDS[seed % len(KINDS)]
    font = ImageFont.load_default(size=r.choice([22, 24, 26, 28]))
    return draw(_MAKERS[kind](r, font, PAGE_SIZE[0] - 2 * MARGIN), font)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def pdf_bytes(images: list[Image.Image]) -> bytes:
    """A PDF with one image page per image, sized so 150 dpi gives the pixels back."""
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=150.0)
    return buf.getvalue()


def write_corpus(directory: Path, count: int, *, first_seed: int = 0) -> list[Path]:
    """Write `count` distinct PNG pages to directory (kept if already there); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(first_seed, first_seed + count):
        path = directory / f"page-{seed:04d}-{KINDS[seed % len(KINDS)]}.png"
        if not path.exists():
            path.write_bytes(png_bytes(make_page(seed)))
        paths.append(path)
    return paths


def small_page() -> Image.Image:
    """A small label-sized page (640x640): big enough that the service does not enlarge it."""
    page = Image.new("L", (640, 640), 255)
    canvas = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=30)
    for n, line in enumerate(["PARCEL LABEL", "To: Grace Okafor", "12 Mill Lane, Porto", "Weight 2.4 kg"]):
        canvas.text((40, 60 + 60 * n), line, font=font, fill=0)
    return page


def tiny_page() -> Image.Image:
    """A trivially small image (240x64, two words): for the overhead and peer runs."""
    page = Image.new("L", (240, 64), 255)
    ImageDraw.Draw(page).text((12, 16), "Paid 12.00", font=ImageFont.load_default(size=26), fill=0)
    return page


def text_pdf(pages: list[list[str]], *, size=(612, 792), font_size=14, invisible: bool = False,
             under: list[Image.Image] | None = None) -> bytes:
    """A PDF whose pages carry these lines as real text (Helvetica), as a word processor writes it.

    invisible: the text is drawn in render mode 3 (as OCR layers are), over `under` page images.
    """
    pdf = pdfium.PdfDocument.new()
    font = c.FPDFText_LoadStandardFont(pdf, b"Helvetica")
    for n, lines in enumerate(pages):
        page = pdf.new_page(*size)
        if under is not None:
            image = pdfium.PdfImage.new(pdf)
            bitmap = pdfium.PdfBitmap.from_pil(under[n].convert("RGB"))
            image.set_bitmap(bitmap)
            image.set_matrix(pdfium.PdfMatrix().scale(*size))
            page.insert_obj(image)
        for i, line in enumerate(lines):
            obj = c.FPDFPageObj_CreateTextObj(pdf, font, font_size)
            units = (line + "\0").encode("utf-16-le")
            c.FPDFText_SetText(obj, ctypes.cast(ctypes.create_string_buffer(units, len(units)),
                                                ctypes.POINTER(c.FPDF_WCHAR)))
            if invisible:
                c.FPDFTextObj_SetTextRenderMode(obj, c.FPDF_TEXTRENDERMODE_INVISIBLE)
            c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, 72, size[1] - 72 - i * font_size * 1.6)
            c.FPDFPage_InsertObject(page, obj)
        page.gen_content()
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def text_pdf_of_pages(seeds: list[int]) -> bytes:
    """Born-digital letter-size pages with the lines make_page(seed) draws, as real text."""
    pages = []
    for seed in seeds:
        r = random.Random(seed)
        kind = KINDS[seed % len(KINDS)]
        font = ImageFont.load_default(size=r.choice([22, 24, 26, 28]))
        pages.append([line.replace("____", "_____") for line in _MAKERS[kind](r, font, PAGE_SIZE[0] - 2 * MARGIN)][:40])
    return text_pdf(pages, font_size=11)


def rendered_pdf(data: bytes, dpi: int = 150) -> bytes:
    """The same pages as images only (a scan of them), rendered as the service renders PDFs."""
    pdf = pdfium.PdfDocument(data)
    try:
        images = [page.render(scale=dpi / 72, grayscale=True).to_pil().copy() for page in pdf]
    finally:
        pdf.close()
    return pdf_bytes(images)
