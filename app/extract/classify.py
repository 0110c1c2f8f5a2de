"""What kind of document this is, from evidence (wording, found facts, page shape), and its title and summary."""
from __future__ import annotations

import re

from .dates import fold
from .layout import Page

# (type, [(pattern, weight)]): wording in the languages the extractor reads.
_EVIDENCE = {
    "receipt": [(r"receipt|resit|kassenbon|quittung|bon|ticket de caisse|kassabon|recibo|scontrino|ricevuta", 3),
                (r"cash(?:ier)?|tunai|change(?: due)?|tendered|baki|kembalian|wechselgeld|rendu|wisselgeld", 2),
                (r"thank you|terima kasih|danke|merci|bedankt|gracias|grazie|please come again", 1.5),
                (r"qty|items?|pcs|rounding|member|points|counter|table|dine in|take ?away", 0.7),
                (r"goods sold|not returnable|exchange|refund", 1.5)],
    "invoice": [(r"invoice|facture|rechnung|factuur|factura|fattura|invois", 2),
                (r"bill to|invoice to|sold to|ship to|rechnungsadresse|adresse de facturation|factuuradres|"
                 r"billing address|shipping address|customer (?:no|number|id)|kundennr|klant", 2),
                (r"due date|payment terms|amount due|zahlbar|echeance|vervaldatum|vencimiento|scadenza|"
                 r"net \d+ days|payable within", 2),
                (r"iban|bic|swift|account number|bank", 1), (r"vat|tva|mwst|ust|btw|iva", 0.5)],
    "contract": [(r"agreement|contract|vertrag|contrat|overeenkomst|contrato|contratto|perjanjian", 2),
                 (r"whereas|hereby|hereinafter|in witness whereof|the parties|party|parties", 1.5),
                 (r"shall|governed by|jurisdiction|terminat\w+|confidential", 0.5)],
    "letter": [(r"dear|sincerely|yours (?:faithfully|truly)|kind regards|best regards|sehr geehrte|"
                r"mit freundlichen|madame|monsieur|geachte|estimado|gentile", 2)],
    "form": [(r"form|application|please (?:complete|fill|print)|signature|applicant|formular|formulaire", 1.5),
             (r"\bto:|\bfrom:|\bsubject:|\bre:|\bcc:|\bfax\s*(?:no|#)|\bdate:", 0.7)],
    "bank statement": [(r"bank statement|statement period|opening balance|closing balance|kontoauszug|releve", 3)],
    "payslip": [(r"payslip|pay slip|gross pay|net pay|deductions|gehaltsabrechnung|bulletin de paie", 3)],
    "id card": [(r"identity card|id card|passport|nationality|date of expiry|place of birth", 2)],
    "certificate": [(r"certificate|hereby certify|awarded|zertifikat|certificat", 2)],
    "resume": [(r"curriculum vitae|resume|work experience|education|skills", 1.5)],
}
_COMPILED = {t: [(re.compile(rf"(?<![a-z])(?:{p})(?![a-z])"), w) for p, w in items] for t, items in _EVIDENCE.items()}
FROM_TYPES = {"receipt", "invoice", "letter", "bank statement", "payslip", "certificate"}
_HEADING_QUALIFIERS = {"tax", "sales", "cash", "proforma", "commercial", "customer", "official"}


def classify(pages: list[Page], kv: dict, *, blanks: int, labels: int) -> tuple[str, list[str]]:
    """(type, tags): each type scores by its wording (a heading counts more) and by the facts found."""
    text = fold("\n".join(p.text for p in pages))
    heading = fold(" ".join(line.text for p in pages[:1] for line in p.lines[:6]))
    scores = {}
    for doc_type, patterns in _COMPILED.items():
        score = 0.0
        for pattern, weight in patterns:
            found = len(pattern.findall(text))
            score += weight * min(found, 3) ** 0.5 if found else 0.0
            if weight >= 2 and pattern.search(heading):
                score += weight
        scores[doc_type] = score
    words = len(text.split())
    first = pages[0] if pages else None
    tall = bool(first and first.width and first.height / first.width >= 1.6)
    if tall and "total" in kv:
        scores["receipt"] += 3  # a till roll: narrow and long, with a total
    if "invoice_number" in kv:
        scores["invoice"] += 1.5
    if "effective_date" in kv or len(pages) >= 3 and words > 1200:
        scores["contract"] += 1.5 if scores["contract"] >= 3 else 0.0
    scores["form"] += min(blanks, 4) + 0.3 * min(labels, 10)
    if words > 800:  # long running text is no form
        scores["form"] -= 3
    ranked = sorted((t for t in scores if scores[t] >= 2), key=lambda t: -scores[t])
    if not ranked:
        return "document", ["document"]
    return ranked[0], ranked[:3]


def display(doc_type: str) -> str:
    return "ID card" if doc_type == "id card" else doc_type.capitalize()


def is_type_heading(line: str, doc_type: str) -> bool:
    """ "INVOICE", "Sales Receipt": a heading that names only the type, no good as a title."""
    words, type_words = re.sub(r"[^a-z ]", "", line.lower()).split(), doc_type.split()
    if words == type_words:
        return True
    return words[1:] == type_words and bool(words) and words[0] in _HEADING_QUALIFIERS


def title(first_lines: list[str], doc_type: str, issuer: str | None, when: str | None) -> str:
    """The issuer's name for documents from someone, else the first meaningful line, else the type and date."""
    shown = display(doc_type)
    if issuer and doc_type in FROM_TYPES:
        return issuer
    if doc_type == "contract":  # "MUTUAL NONDISCLOSURE AGREEMENT" under a filing's header lines
        for line in first_lines[:15]:
            if re.search(r"(?i)agreement|contract|vertrag|contrat|overeenkomst|contrato|contratto", line) \
                    and len(line.split()) <= 12 and line.upper() == line and sum(c.isalpha() for c in line) >= 8:
                return " ".join(line.split())
    for line in first_lines[:15]:
        letters = sum(c.isalpha() for c in line)
        if 3 <= len(line) <= 80 and letters >= max(3, len(line.replace(" ", "")) / 2) and ":" not in line \
                and not line.lower().startswith("dear ") and not re.search(r"\d[.,]\d\d\b|@", line):
            if not is_type_heading(line, doc_type):
                return line
            if issuer:
                return f"{shown} from {issuer}"
    return f"{shown} {when}" if when else shown


def describe(doc_type: str, title_text: str, issuer: str | None, kv: dict, kind: str, fields: list[str]) -> str:
    """One sentence: the type and the main facts."""
    shown = display(doc_type)
    if doc_type in FROM_TYPES and issuer:
        sentence = f"{shown} from {issuer}"
    elif title_text.lower() != doc_type:
        sentence = f'{shown} "{title_text}"'
    else:
        sentence = shown
    when = kv.get("date") or kv.get("effective_date")
    if when:
        sentence += f" dated {when}"
    if kv.get("total"):
        sentence += f", total {kv['total']}{' ' + kv['currency'] if kv.get('currency') else ''}"
    if kind == "form":
        sentence += f", {len(fields)} blank field{'s' if len(fields) != 1 else ''} to fill"
    return sentence + "."
