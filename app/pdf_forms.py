"""Filled AcroForm fields of a PDF page: read from the form itself, and placed in the page's text."""
from __future__ import annotations

import ctypes
from array import array

import pypdfium2.raw as c

from .ocr import union_box


def decode_utf16(units) -> str:
    return array("H", units).tobytes().decode("utf-16-le", "replace")


def line_of(words: list[dict]) -> dict:
    return {"text": " ".join(w["text"] for w in words), "box": union_box([w["box"] for w in words]),
            "confidence": 100.0, "words": words}


_VALUE_FIELDS = {c.FPDF_FORMFIELD_TEXTFIELD, c.FPDF_FORMFIELD_COMBOBOX, c.FPDF_FORMFIELD_LISTBOX}
_CHOICE_FIELDS = {c.FPDF_FORMFIELD_CHECKBOX, c.FPDF_FORMFIELD_RADIOBUTTON}


def form_fields(pdf, page, to_px) -> list[dict]:
    """The page's fillable fields in order: [{name, value, box}], value "" when blank (unchecked)."""
    form = pdf.formenv
    if form is None:
        return []
    out: dict[str, dict] = {}
    rect = c.FS_RECTF()
    for i in range(c.FPDFPage_GetAnnotCount(page)):
        annot = c.FPDFPage_GetAnnot(page, i)
        if not annot:
            continue
        try:
            if c.FPDFAnnot_GetSubtype(annot) != c.FPDF_ANNOT_WIDGET:
                continue
            kind = c.FPDFAnnot_GetFormFieldType(form, annot)
            if kind not in _VALUE_FIELDS | _CHOICE_FIELDS:
                continue
            name = _annot_string(c.FPDFAnnot_GetFormFieldName, form, annot).strip()
            if not name:
                continue
            if kind in _CHOICE_FIELDS:
                value = _annot_string(c.FPDFAnnot_GetFormFieldValue, form, annot) if c.FPDFAnnot_IsChecked(form, annot) else ""
            else:
                value = _annot_string(c.FPDFAnnot_GetFormFieldValue, form, annot)
            box = to_px.box(rect.left, rect.bottom, rect.right, rect.top) if c.FPDFAnnot_GetRect(annot, rect) else None
            if name not in out or (value and not out[name]["value"]):
                out[name] = {"name": name, "value": value.strip(), "box": box}
        finally:
            c.FPDFPage_CloseAnnot(annot)
    return list(out.values())


def _annot_string(func, form, annot) -> str:
    size = func(form, annot, None, 0)
    if size <= 2:
        return ""
    buffer = (ctypes.c_ushort * (size // 2))()
    func(form, annot, buffer, size)
    return decode_utf16(buffer[: size // 2 - 1])


def with_field_values(lines: list[dict], fields: list[dict]) -> list[dict]:
    """Filled values placed in the text where they are drawn: beside their label's line, or as lines of their own."""
    lines = [dict(line, words=list(line["words"])) for line in lines]
    for field in fields:
        if not field["value"] or field["box"] is None:
            continue
        box = field["box"]
        # Where each word is drawn, estimated: text starts at the field's left, glyphs about half as wide
        # as the field is tall, squeezed to fit.
        value = " ".join(field["value"].split())
        step = min(0.55 * (box[3] - box[1]), (box[2] - box[0]) / max(1, len(value)))
        words, at = [], 0
        for part in value.split(" "):
            left = box[0] + at * step
            words.append({"text": part, "box": [round(left), box[1], round(left + len(part) * step), box[3]],
                          "confidence": 100.0})
            at += len(part) + 1
        same_row = [line for line in lines if _overlap(line["box"], box) >= 0.5]
        if same_row:
            line = same_row[0]
            line["words"] = sorted(line["words"] + words, key=lambda w: w["box"][0])
            lines[lines.index(line)] = line_of(line["words"])
        else:
            at = next((n for n, line in enumerate(lines) if line["box"][1] > box[1]), len(lines))
            lines.insert(at, line_of(words))
    return lines


def _overlap(a: list[int], b: list[int]) -> float:
    """Vertical overlap of two boxes as a share of the shorter one."""
    shared = min(a[3], b[3]) - max(a[1], b[1])
    return shared / max(1, min(a[3] - a[1], b[3] - b[1]))
