"""Labels: readable keys, the canonical keys and their synonyms in several languages, and label -> value pairs."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .dates import fold
from .layout import Box, Page, Span, below, phrases, right_of, under_column

# The keys both extractors use for the facts most users want (README lists them); others are free keys.
CANONICAL = {
    "date": "the document's own date (issue or purchase date), YYYY-MM-DD",
    "total": "the amount finally due or paid, as a number with two decimals",
    "currency": "ISO 4217 code of the total, e.g. EUR, USD, MYR",
    "subtotal": "the sum before taxes and charges",
    "tax": "the tax amount (VAT, GST, sales tax)",
    "company": "the issuer: the company or shop that wrote the document",
    "address": "the issuer's postal address, lines joined by spaces",
    "invoice_number": "the invoice, receipt or bill number",
    "tax_id": "the issuer's tax registration number (VAT, GST, USt-IdNr., ...)",
    "email": "the first e-mail address",
    "phone": "the issuer's telephone number",
    "fax": "the fax number",
    "due_date": "the payment due date, YYYY-MM-DD",
    "effective_date": "the date an agreement takes effect, YYYY-MM-DD",
}

# Words of a label (folded, lowercase) -> the canonical key they name; several languages.
SYNONYMS = {
    "date": "date", "dated": "date", "datum": "date", "fecha": "date", "data": "date", "tarikh": "date",
    "invoice date": "date", "date of invoice": "date", "receipt date": "date", "bill date": "date",
    "issue date": "date", "date of issue": "date", "document date": "date", "rechnungsdatum": "date",
    "factuurdatum": "date", "date de facture": "date", "date facture": "date", "fecha de factura": "date",
    "data fattura": "date", "data della fattura": "date", "tarikh invois": "date", "belegdatum": "date",
    "total": "total", "amount": "total", "total amount": "total", "grand total": "total", "amount due": "total",
    "total due": "total", "balance due": "total", "betrag": "total", "gesamtbetrag": "total", "gesamt": "total",
    "rechnungsbetrag": "total", "endbetrag": "total", "totaal": "total", "totaalbedrag": "total",
    "te betalen": "total", "montant": "total", "montant total": "total", "total ttc": "total",
    "net a payer": "total", "importe": "total", "importe total": "total", "totale": "total",
    "importo": "total", "importo totale": "total", "jumlah": "total", "nett total": "total", "net total": "total",
    "invoice number": "invoice_number", "invoice": "invoice_number", "invoice id": "invoice_number",
    "inv number": "invoice_number", "bill number": "invoice_number", "receipt number": "invoice_number",
    "rechnungsnummer": "invoice_number", "rechnungsnr": "invoice_number", "rechnung number": "invoice_number",
    "factuurnummer": "invoice_number", "factuurnr": "invoice_number", "factuur number": "invoice_number",
    "facture number": "invoice_number", "numero de facture": "invoice_number", "number de facture": "invoice_number",
    "numero facture": "invoice_number", "factura number": "invoice_number", "numero de factura": "invoice_number",
    "fattura number": "invoice_number", "numero fattura": "invoice_number", "invois number": "invoice_number",
    "no invois": "invoice_number", "invoice no": "invoice_number", "booking id": "booking_number",
    "booking number": "booking_number", "booking reference": "booking_number", "confirmation number": "booking_number",
    "company": "company", "company name": "company", "vendor": "company", "seller": "company",
    "supplier": "company", "merchant": "company", "issuer": "company", "firma": "company",
    "societe": "company", "bedrijf": "company", "empresa": "company", "azienda": "company", "syarikat": "company",
    "address": "address", "adresse": "address", "adres": "address", "direccion": "address",
    "indirizzo": "address", "alamat": "address",
    "currency": "currency", "wahrung": "currency", "devise": "currency", "valuta": "currency", "moneda": "currency",
    "tax id": "tax_id", "vat number": "tax_id", "vat id": "tax_id", "vat reg number": "tax_id",
    "gst number": "tax_id", "gst reg number": "tax_id", "gst id": "tax_id", "gst id number": "tax_id",
    "ust idnr": "tax_id", "ust id": "tax_id", "steuernummer": "tax_id", "steuer number": "tax_id",
    "numero tva": "tax_id", "tva": "tax_id", "btw nummer": "tax_id", "btw number": "tax_id", "nif": "tax_id",
    "cif": "tax_id", "partita iva": "tax_id", "p iva": "tax_id", "tin": "tax_id", "ein": "tax_id",
    "gstin": "tax_id", "abn": "tax_id", "sst number": "tax_id",
    "email": "email", "e mail": "email", "email address": "email", "mail": "email",
    "phone": "phone", "telephone": "phone", "tel": "phone", "phone number": "phone", "telefon": "phone",
    "telefoon": "phone", "telefono": "phone", "mobile": "phone",
    "fax": "fax", "telefax": "fax",
    "due date": "due_date", "payment due": "due_date", "faelligkeit": "due_date", "falligkeitsdatum": "due_date",
    "faellig am": "due_date", "echeance": "due_date", "date d echeance": "due_date", "vervaldatum": "due_date",
    "fecha de vencimiento": "due_date", "vencimiento": "due_date", "scadenza": "due_date",
    "data di scadenza": "due_date", "tarikh akhir": "due_date",
    "effective date": "effective_date", "effective as of": "effective_date", "commencement date": "effective_date",
    "subtotal": "subtotal", "sub total": "subtotal", "zwischensumme": "subtotal", "sous total": "subtotal",
    "subtotaal": "subtotal", "total ht": "subtotal", "tax": "tax", "vat": "tax", "gst": "tax", "mwst": "tax",
    "sales tax": "tax", "vat total": "tax", "tax amount": "tax", "total tax": "tax", "btw": "tax", "iva": "tax",
}
_NUMBER_WORDS = {"no": "number", "nr": "number", "num": "number", "n": "number", "no.": "number", "nº": "number",
                 "n°": "number", "nummer": "number", "numero": "number", "numer": "number", "#": "number"}
_FILLER = {"your", "the", "please", "enter", "of", "du", "de", "la", "le", "der", "die", "des", "van", "del"}
_KEEP_FILLER = {"date of issue", "date of invoice", "date d echeance", "fecha de factura", "fecha de vencimiento",
                "numero de facture", "number de facture", "numero de factura", "data della fattura",
                "data di scadenza"}
_FORM_SYNONYMS = {
    "telephone": "phone", "tel": "phone", "phone number": "phone", "telephone number": "phone",
    "tel number": "phone", "mobile": "phone", "mobile number": "phone", "cell": "phone", "cell phone": "phone",
    "contact number": "phone", "cell number": "phone", "email address": "email", "mail": "email", "e mail": "email",
    "dob": "date birth", "birth date": "date birth", "birthdate": "date birth", "date birth": "date birth",
    "birthday": "date birth", "full name": "name", "name in full": "name", "applicant name": "name",
    "surname": "last name", "family name": "last name", "given name": "first name",
    "given names": "first name", "forename": "first name", "zip": "postal code", "zip code": "postal code",
    "postcode": "postal code", "post code": "postal code", "street address": "address",
    "home address": "address", "postal address": "address", "residential address": "address",
    "addr": "address", "organisation": "company", "organization": "company", "company name": "company",
}


def label_key(label: str) -> str:
    """A readable snake_case key: "Invoice No." -> "invoice_number", "E-mail" -> "email"."""
    text = fold(label).replace("e-mail", "email").replace("#", " number ").replace("n°", " number ")
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    if words and words[-1] in ("no", "nr", "num"):
        words[-1] = "number"
    return "_".join(words)[:60] or "value"


def label_words(label: str) -> str:
    """A label reduced for matching: folded, punctuation gone, number words one word."""
    text = fold(str(label)).replace("e-mail", "email").replace("_", " ")
    text = re.sub(r"(n[°º]|#)", " number ", text)
    text = re.sub(r"(?<=[a-z])nr\b\.?", " number", text)  # "Rechnungsnr." -> "rechnungs number"
    words = [_NUMBER_WORDS.get(w, w) for w in re.sub(r"[^a-z0-9]+", " ", text).split()]
    phrase = " ".join(words)
    if phrase in _KEEP_FILLER:
        return phrase
    return " ".join(w for w in words if w not in _FILLER) or phrase


def canonical_key(label: str) -> str | None:
    """The canonical key a label names ("Rechnungsnr." -> invoice_number), or None."""
    words = label_words(label)
    glued = words.replace("rechnungs number", "rechnungsnummer").replace("factuur number", "factuurnummer")
    return SYNONYMS.get(glued) or SYNONYMS.get(words) or (words.replace(" ", "_") if words.replace(" ", "_")
                                                          in CANONICAL else None)


def canonical_label(label: str) -> str:
    """A form label or library key reduced for matching: case, punctuation and synonyms gone."""
    phrase = label_words(label)
    return _FORM_SYNONYMS.get(phrase, phrase)


@dataclass
class Pair:
    label: str
    value: str
    page: int
    box: Box | None  # the value's box
    label_box: Box | None


_LABEL = re.compile(r"^\s*[‘’'\"“”`|©•*]*\s*(?P<label>[^\W\d_][\w#°º&/().' -]{0,48}?)\s*[:;]\s*(?P<value>.*)$")
_INNER_LABEL = re.compile(r"\s(?P<label>(?:[A-Z][A-Z#°º&/.'-]*\s){0,3}[A-Z][A-Z#°º&/.'-]+|[A-Z][a-z]+)\s?:\s")
BLANK = re.compile(r"[\s_.\-—–…|=~*'`,]*")


def split_label(text: str) -> tuple[str, str] | None:
    """("Invoice No", "42") from "Invoice No: 42"; None when the text is no label."""
    m = _LABEL.match(text)
    if not m or m["value"].startswith("//") or len(m["label"].split()) > 8:
        return None
    label = m["label"]
    if sum(c.isdigit() for c in label) * 2 > sum(c.isalpha() for c in label):
        return None  # "DEC-10-98 17:06" is a time, not a label
    if label[0].islower() and len(label.split()) > 1:
        return None  # "... and vendors: nonpublic forms" is running text wrapped at a colon
    return " ".join(label.strip(" .-_‘'").split()), m["value"].strip()


def label_chain(text: str) -> list[tuple[str, str]]:
    """ "Start: ____ End: ____" -> [("Start", ""), ("End", "")]: labels whose value is the next label."""
    out = []
    split = split_label(text)
    while split:
        label, value = split
        nested = split_label(value.lstrip(" _.-—–…")) if value else None
        if nested is None:
            out.append((label, "" if BLANK.fullmatch(value) else clean_value(value)))
            break
        out.append((label, ""))
        split = nested
    return out


def clean_value(value: str) -> str:
    """A value without the rule lines and stray marks OCR reads around handwriting: "__June Flynn|" -> "June Flynn"."""
    return value.strip().strip("_|‘'`~—–-:; ").strip()


def _split_inner(value: str) -> list[tuple[str, str]]:
    """ "Sam Zolot MANUFACTURER: B&W" -> [("", "Sam Zolot"), ("MANUFACTURER", "B&W")]: a second label in a value."""
    out, rest, label = [], value, ""
    while True:
        m = _INNER_LABEL.search(" " + rest + " ")
        if not m or m.start() == 0:
            out.append((label, rest.strip()))
            return out
        out.append((label, rest[:m.start()].strip()))
        label, rest = m["label"], rest[m.end() - 1:]


def pairs(page: Page) -> list[Pair]:
    """`Label: value` on one phrase, or a `Label:` with its value to the right of it or below it."""
    units = [p for line in page.lines for p in phrases(line)]
    used: set[int] = set()
    out: list[Pair] = []
    for unit in units:
        chain = label_chain(unit.text)
        if not chain:
            continue
        label, value = chain[-1]
        if len(chain) > 1 and not value:
            continue  # a row of blanks: "Start: ____ End: ____"
        if value and not BLANK.fullmatch(value):
            start = len(unit.text) - len(unit.text.lstrip()) + unit.text.find(value)
            parts = _split_inner(value)
            offset = start
            for part_label, part_value in parts:
                pos = unit.text.find(part_value, offset) if part_value else offset
                if part_value:
                    out.append(Pair(part_label or label, part_value, page.number,
                                    unit.box_of(pos, pos + len(part_value)), unit.box_of(0, start)))
                offset = pos + len(part_value)
            continue
        partner = right_of(unit, units)
        header = partner is not None and bool(split_label(partner.text))  # "Recipient(s):  Company:  Phone No.:"
        if partner is None or header:
            partner = below(unit, units)
            partner = under_column(partner, unit) if partner is not None else None
        if partner is None or id(partner) in used or split_label(partner.text) or BLANK.fullmatch(partner.text):
            continue
        used.add(id(partner))
        out.append(Pair(label, clean_value(partner.text), page.number, partner.box, unit.box))
        if header:  # a table under a row of labels: every cell of this label's column
            out += [Pair(label, clean_value(c.text), page.number, c.box, unit.box)
                    for c in _column_below(partner, unit, units, used) if clean_value(c.text)]
    return out


def _column_below(first: Span, label: Span, units: list[Span], used: set, *, max_rows: int = 12) -> list[Span]:
    """The cells under `first` in the label's column, down to a gap, a label or the table's end."""
    cells, last = [], first
    while len(cells) < max_rows:
        nxt = below(last, units, reach=3.0)
        if nxt is None or id(nxt) in used or split_label(nxt.text) or BLANK.fullmatch(nxt.text):
            return cells
        cell = under_column(nxt, label)
        used.add(id(nxt))
        cells.append(cell)
        last = nxt
    return cells


def colonless_pairs(page: Page, known) -> list[Pair]:
    """A known label without a colon ("Rechnungsnr. 30064443", "DATE" over its value): the rest, or right, or below."""
    units = [p for line in page.lines for p in phrases(line)]
    out = []
    for unit in units:
        if split_label(unit.text):
            continue
        hit = known(unit.text)
        if hit is None:
            continue
        label, end = hit
        rest = unit.text[end:].strip(" :;.-")
        if rest:
            start = unit.text.find(rest, end)
            out.append(Pair(label, rest, page.number, unit.box_of(start, start + len(rest)), unit.box_of(0, end)))
            if re.search(r"\d", rest) or not unit.box:
                continue
            # "Booking ID  Payment Mode" over "IBZY2087  Cash": a table header; the value is in the column below
            head = Span(unit.page, [w for w, s in zip(unit.words, unit.starts) if s < end], confidence=unit.confidence)
            value = below(unit, units)
            if value is not None:
                value = under_column(value, head)
                out.append(Pair(label, value.text.strip(), page.number, value.box, head.box))
            continue
        right, under = right_of(unit, units), below(unit, units)
        under = under_column(under, unit) if under is not None else None
        if right is not None and under is not None and not re.search(r"\d", right.text) and re.search(r"\d", under.text):
            right = None  # a header row ("Booking ID  Payment Mode"): the value is in the column below
        partner = right or under
        if partner is not None and not split_label(partner.text):
            out.append(Pair(label, partner.text.strip(), page.number, partner.box, unit.box))
    return out

