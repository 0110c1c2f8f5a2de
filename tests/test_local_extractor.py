"""The local extractor on pages read back by the real tesseract, and on plain text."""
import pytest

from app import ocr
from app.extract import schemas
from app.extract.base import LibraryEntry
from app.extract.local import LocalExtractor, canonical_label, label_key
from drawing import blank_form_lines, draw_page, invoice_lines, letter_lines, receipt_lines


@pytest.fixture(scope="module")
def scanned():
    """OCR text of each sample page, read once for the module."""
    tesseract = ocr.Tesseract(timeout=30)
    samples = {"receipt": receipt_lines(), "invoice": invoice_lines(), "form": blank_form_lines(),
               "letter": letter_lines()}
    return {name: tesseract.read(draw_page(lines)).text for name, lines in samples.items()}


@pytest.fixture
def local():
    return LocalExtractor()


def test_receipt(scanned, local):
    result = local.extract("document", [scanned["receipt"]])
    data = result.data
    assert result.extractor == "local" and result.usage == {}
    assert data["title"] == "ACME Store"
    assert data["tags"][0] == "receipt"
    assert data["description"] == "Receipt from ACME Store dated 2024-03-15, total 32.50 USD."
    kv = data["kv"]
    assert kv["date"] == "2024-03-15"
    assert (kv["total"], kv["currency"]) == ("32.50", "USD")
    assert (kv["subtotal"], kv["tax"]) == ("30.50", "2.00")
    assert kv["receipt_number"] == "10023"
    assert kv["email"] == "info@acme-store.com"
    assert kv["phone"] == "+1 555-123-4567"
    assert schemas.validate("document", data) == {k: v for k, v in data.items() if k != "provenance"}


def test_invoice(scanned, local):
    data = local.extract("document", [scanned["invoice"]]).data
    assert data["title"] == "Northwind Traders Ltd"
    assert data["tags"][0] == "invoice"
    kv = data["kv"]
    assert kv["invoice_number"] == "INV-2024-0042"
    assert (kv["invoice_date"], kv["due_date"]) == ("2024-03-15", "2024-04-14")
    assert kv["date"] == "2024-03-15"  # the invoice date, not the due date
    assert kv["dates"] == "2024-03-15, 2024-04-14"
    assert (kv["total"], kv["currency"]) == ("1620.00", "EUR")
    assert kv["bill_to"] == "Contoso GmbH"
    assert kv["email"] == "billing@northwind.co.uk"
    assert "total 1620.00 EUR" in data["description"]


def test_blank_form_fields(scanned, local):
    data = local.extract("form", [scanned["form"]]).data
    assert data["title"] == "Membership Application Form"
    assert data["tags"][0] == "form"
    assert data["fields"][:5] == ["Full Name", "Date of Birth", "Email", "Telephone", "Address"]
    assert any("agree to the terms" in f for f in data["fields"])
    assert data["kv"] == {"member_type": "Standard"}
    assert "blank fields to fill" in data["description"]
    assert schemas.validate("form", data) == {k: v for k, v in data.items() if k != "provenance"}


def test_document_kind_ignores_blanks(scanned, local):
    data = local.extract("document", [scanned["form"]]).data
    assert "fields" not in data
    assert data["kv"] == {"member_type": "Standard"}


def test_letter(scanned, local):
    data = local.extract("document", [scanned["letter"]]).data
    assert data["tags"][0] == "letter"
    assert data["title"] == "Jane Doe"
    assert data["description"] == "Letter from Jane Doe dated 2024-03-15."
    assert data["kv"]["dates"] == "2024-03-15, 2024-04-30"


def test_fill_from_a_scanned_form(scanned, local):
    fields = local.extract("form", [scanned["form"]]).data["fields"]
    library = [LibraryEntry({"full_name": "Jane Doe", "email_address": "jane@example.com"}, "task", "t1"),
               LibraryEntry({"Tel": "+44 117 496 0000", "date_of_birth": "1990-02-01"}, "inline", "inline-1")]
    data = local.fill(fields, scanned["form"], library).data
    assert data["filled"]["Full Name"] == {"value": "Jane Doe", "source": {"type": "task", "id": "t1"}}
    assert data["filled"]["Email"]["value"] == "jane@example.com"
    assert data["filled"]["Telephone"] == {"value": "+44 117 496 0000",
                                           "source": {"type": "inline", "id": "inline-1"}}
    assert data["filled"]["Date of Birth"]["value"] == "1990-02-01"
    assert "Address" in data["missing"]
    assert set(data["filled"]) | set(data["missing"]) == set(fields)


def test_fill_earlier_entries_win_and_fuzzy_labels(local):
    library = [LibraryEntry({"email": "first@example.com", "name": "Ann Lee"}, "task", "a"),
               LibraryEntry({"E-mail": "second@example.com", "phone_number": "555 0100",
                             "DOB": "1985-07-09", "Adress": "1 Elm St"}, "task", "b")]
    fields = ["E-mail address", "Your full name", "Telephone No.", "Date of birth", "Address",
              "Emial", "Favourite colour"]
    data = local.fill(fields, "", library).data
    assert data["filled"]["E-mail address"]["value"] == "first@example.com"
    assert data["filled"]["Emial"]["value"] == "first@example.com"
    assert data["filled"]["Your full name"]["value"] == "Ann Lee"
    assert data["filled"]["Telephone No."]["source"] == {"type": "task", "id": "b"}
    assert data["filled"]["Date of birth"]["value"] == "1985-07-09"
    assert data["filled"]["Address"]["value"] == "1 Elm St"
    assert data["missing"] == ["Favourite colour"]


def test_fill_with_empty_library(local):
    assert local.fill(["Name", "Email"], "", []).data == {"filled": {}, "missing": ["Name", "Email"]}


@pytest.mark.parametrize("written", [
    "2024-03-15", "2024/03/15", "15/03/2024", "03/15/2024", "15.03.2024", "15-03-2024", "15/03/24",
    "March 15, 2024", "Mar 15 2024", "Mar. 15th, 2024", "15 Mar 2024", "15th of March 2024", "15 MARCH 2024",
])
def test_date_formats(local, written):
    assert local.extract("document", [f"Note\nDate: {written}"]).data["kv"]["date"] == "2024-03-15"


def test_ambiguous_dates_follow_day_first():
    text = ["Note\nIssued 05/04/2024"]
    assert LocalExtractor().extract("document", text).data["kv"]["date"] == "2024-04-05"
    assert LocalExtractor(day_first=False).extract("document", text).data["kv"]["date"] == "2024-05-04"


def test_impossible_dates_are_ignored(local):
    assert "date" not in local.extract("document", ["Note\nCode 31/02/2024 and 2024-13-01"]).data["kv"]


@pytest.mark.parametrize("written, iso", [
    ("LB/05/18", "2018-05-18"),  # L and B read for 1 and 8
    ("I8-O5-2O18", "2018-05-18"),
    ("2S/I2/2OI7", "2017-12-25"),
    ("09/04/2078 10:52", "2018-04-09"),  # a 1 read as 7 puts the year decades ahead
    ("21/05/20 18", "2018-05-21"),  # a space inside the year
    ("21/05/ 18 10:52", "2018-05-21"),
    ("21/05/20 16:30", "2020-05-21"),  # a two-digit year and the time
])
def test_dates_read_through_ocr_lookalikes(local, written, iso):
    assert local.extract("document", [f"Shop\nDate: {written}"]).data["kv"]["date"] == iso


def test_a_far_future_date_is_not_the_documents(local):
    kv = local.extract("document", ["Shop\nValid 01/01/2095\nIssued 02/03/2024"]).data["kv"]
    assert kv["date"] == "2024-03-02"


def _page(*lines):
    """A page as OCR gives it: each line (text, confidence of its words), stacked top to bottom."""
    out = []
    for i, (text, conf) in enumerate(lines):
        words, x = [], 10
        for token in text.split():
            words.append({"text": token, "box": [x, 20 + 30 * i, x + 12 * len(token), 40 + 30 * i], "confidence": conf})
            x += 12 * len(token) + 10
        out.append({"text": text, "box": [10, 20 + 30 * i, x, 40 + 30 * i], "confidence": conf, "words": words})
    return {"text": "\n".join(t for t, _ in lines), "width": 800, "height": 40 + 30 * len(lines), "lines": out}


def test_of_two_readings_of_one_date_the_surer_wins(local):
    page = _page(("Shop", 95), ("Date : 19/03/2017 03:00:42PM", 70), ("Item 5.00", 95),
                 ("Print Date: 13/03/2017 03:00:44PM", 95))
    assert local.extract("document", [page]).data["kv"]["date"] == "2017-03-13"
    clear = _page(("Shop", 95), ("Date : 19/03/2017", 92), ("Print Date: 13/03/2017", 95))
    assert local.extract("document", [clear]).data["kv"]["date"] == "2017-03-19"  # both read well: the label's


@pytest.mark.parametrize("other", ["Due date: 31/03/2024", "Check-out: 04/03/2024", "Departure 11/03/2024"])
def test_another_events_date_one_digit_apart_stays_another_date(local, other):
    page = _page(("Invoice", 95), ("Date: 01/03/2024", 70), (other, 96))
    assert local.extract("document", [page]).data["kv"]["date"] == "2024-03-01"


@pytest.mark.parametrize("lines, total", [
    (["Kedai", "Bun RM6.90", "SUBTUTA RM20. 40", "CASH RM20. 40"], "20.40"),  # OCR's "SUBTUTA", no total line
    (["Kedai", "10 SubTotal 85. 20", "Nett etal 6S. 20", "Cash 100.20", "Amount Tax", "85.20 0.06"], "85.20"),
    (["Kedai", "Total (Excluding GST): 9.60", "TOTAL qg. 60", "CASH : 9, 60"], "9.60"),
])
def test_a_subtotal_printed_again_is_the_total(local, lines, total):
    assert local.extract("document", ["\n".join(lines)]).data["kv"]["total"] == total


@pytest.mark.parametrize("lines, total, currency", [
    (["Shop", "Subtotal 5.00", "Amount due: €1.234,56"], "1234.56", "EUR"),
    (["Shop", "Total: £10.00", "Grand Total: £12.00"], "12.00", "GBP"),
    (["Shop", "Balance Due", "$ 99.90"], "99.90", "USD"),
    (["Shop", "TOTAL 42.50"], "42.50", None),
    (["Shop", "Total 1,200.00 CHF"], "1200.00", "CHF"),
    (["Shop", "Item x3 $9.00", "Sub-total $9.00", "Total $9.00"], "9.00", "USD"),
    (["Shop", "Total Amount 85.18", "Rounding Adj 0.02", "Nett Total 85.20", "Cash 100.00", "Change 14.80"],
     "85.20", None),
    (["Shop", "TOTAL QTY 2", "TOTAL RM 14.10", "CASH RM 20.00"], "14.10", "MYR"),
    (["Laden", "Zwischensumme 10,00", "Gesamtbetrag 11,90 EUR"], "11.90", "EUR"),
    (["Boutique", "Total HT : 46,68 €", "Total TTC : 56,02 €"], "56.02", "EUR"),
    (["Winkel", "Totaal € 4.904,94"], "4904.94", "EUR"),
    (["Kedai", "Total Sales (Inclusive GST) RM 141.5", "Cash RM 150.00"], "141.50", "MYR"),
    (["Shop", "SubTotal 80.00", "Total 85. 20"], "85.20", None),
    (["Kedai", "Item 2S.00", "TOTAL RM 1O.5O", "CASH RM 2O.OO"], "10.50", "MYR"),  # O read for 0, S for 5
    (["Shop", "Total l2.9O"], "12.90", None),
])
def test_totals(local, lines, total, currency):
    kv = local.extract("document", ["\n".join(lines)]).data["kv"]
    assert kv["total"] == total
    assert kv.get("currency") == currency


def test_no_total_without_a_total_line(local):
    kv = local.extract("document", ["Shop\nSubtotal $5.00\nItem $3.00"]).data["kv"]
    assert "total" not in kv and kv["subtotal"] == "5.00"


def test_noisy_blank_fields(local):
    text = "\n".join([
        "Registration Form",
        "Name; ______",
        "Date of birth: ........",
        "Phone: — — —",
        "Signature ________",
        "Employer: ---",
        "City:",
        "[ ] Subscribe to the newsletter",
        "[x] Member",
        "Start: ____ End: ____",
        "Nationality: British",
    ])
    data = local.extract("form", [text]).data
    assert data["fields"] == ["Name", "Date of birth", "Phone", "Signature", "Employer", "City",
                              "Subscribe to the newsletter", "Start", "End"]
    assert data["kv"] == {"member": "yes", "nationality": "British"}


def test_contacts_and_labels(local):
    text = "\n".join([
        "Contact sheet",
        "Invoice No.: 42",
        "Customer #: 7",
        "E-mail: Sales@Example.com, help@example.org",
        "Tel: (020) 7946 0958",
        "Website: https://example.com",
        "Account: DE89 3704 0044 0532 0130 00",
    ])
    kv = local.extract("document", [text]).data["kv"]
    assert kv["invoice_number"] == "42"
    assert kv["customer_number"] == "7"
    assert kv["email"] == "sales@example.com"
    assert kv["phone"] == "(020) 7946 0958"
    assert kv["website"] == "https://example.com"
    assert kv["account"] == "DE89 3704 0044 0532 0130 00"


@pytest.mark.parametrize("text, first_tag", [
    ("Bank Statement\nOpening balance 100.00\nClosing balance 80.00\nIBAN GB00", "bank statement"),
    ("SERVICE AGREEMENT\nThe parties hereby agree to the terms and conditions.", "contract"),
    ("Sales Receipt\nThank you for shopping", "receipt"),
    ("Payslip March\nGross pay 3000\nNet pay 2200", "payslip"),
])
def test_document_types(local, text, first_tag):
    data = local.extract("document", [text]).data
    assert data["tags"][0] == first_tag
    assert 1 <= len(data["tags"]) <= 4


def test_empty_and_untyped_text(local):
    data = local.extract("document", [""]).data
    assert (data["title"], data["tags"], data["kv"]) == ("Document", ["document"], {})
    data = local.extract("form", ["just a few words here", "and a second page"]).data
    assert data["title"] == "just a few words here" and data["fields"] == []
    assert data["description"] == 'Document "just a few words here", 0 blank fields to fill.'


def test_type_heading_with_only_a_date_becomes_type_and_date(local):
    assert local.extract("document", ["RECEIPT\n2024-03-15\nTotal $4.00"]).data["title"] == "Receipt 2024-03-15"


def test_label_helpers():
    assert label_key("Invoice No.") == "invoice_number"
    assert label_key("E-mail") == "email"
    assert label_key("Bill To") == "bill_to"
    assert canonical_label("Telephone No.") == canonical_label("phone") == "phone"
    assert canonical_label("DOB") == canonical_label("date_of_birth")
    assert canonical_label("Your Full Name") == canonical_label("name")


def test_unicode_checkboxes(local):
    data = local.extract("form", ["Survey\n☐ Email me\n☒ Call me"]).data
    assert data["fields"] == ["Email me"] and data["kv"] == {"call_me": "yes"}


def _line(y, *cells, height=12, char=7):
    """One OCR line of word boxes: cells are (x, text); each word `char` px a letter, one space apart."""
    words = []
    for x, text in cells:
        for token in text.split():
            words.append({"text": token, "box": [x, y, x + char * len(token), y + height], "confidence": 90})
            x += char * (len(token) + 1)
    return {"text": " ".join(w["text"] for w in words), "confidence": 90,
            "box": [words[0]["box"][0], y, words[-1]["box"][2], y + height], "words": words}


def _form(*lines, width=760, height=1000):
    return {"text": "\n".join(line["text"] for line in lines), "width": width, "height": height, "lines": list(lines)}


def _form_kv(local, *lines):
    return local.extract("form", [_form(*lines)]).data["kv"]


def test_form_value_right_of_its_label_and_stopping_at_the_next_label(local):
    kv = _form_kv(local, _line(100, (50, "To:"), (150, "Sam Zolot"), (400, "MANUFACTURER:"), (520, "B&W")),
                  _line(130, (50, "FROM: D. J. Landro BRAND: Kool Waterfall")))
    assert kv == {"to": "Sam Zolot", "manufacturer": "B&W", "from": "D. J. Landro", "brand": "Kool Waterfall"}


def test_form_value_below_its_label_in_the_same_column(local):
    kv = _form_kv(local, _line(100, (50, "SUBJECT:")), _line(118, (55, "Quarterly progress report")),
                  _line(200, (50, "COMMENTS:")))
    assert kv == {"subject": "Quarterly progress report"}


def test_form_labels_without_colons_need_the_words_of_a_field(local):
    kv = _form_kv(local, _line(100, (50, "Reference"), (300, "17560-188")),
                  _line(130, (50, "Kroger"), (300, "24")),
                  _line(160, (50, "Please write to the Support Center at 268-9312 today")))
    assert kv == {"reference": "17560-188"}


def test_form_header_row_over_a_row_of_values(local):
    kv = _form_kv(local, _line(100, (50, "Fax Number"), (300, "Voice Number")),
                  _line(120, (52, "910-335-7077"), (302, "910-335-7720")),
                  _line(150, (50, "Sender"), (300, "Number of Pages (this page included)")),
                  _line(170, (52, "Charles Duggan"), (302, "2")))
    assert kv == {"fax_number": "910-335-7077", "voice_number": "910-335-7720", "sender": "Charles Duggan",
                  "number_of_pages_this_page_included": "2"}


def test_form_table_under_a_header_row_with_wrapped_cells(local):
    kv = _form_kv(local, _line(100, (50, "Recipient(s):"), (250, "Company:"), (450, "Fax No.:")),
                  _line(130, (50, "Mr. Meyer Koplow"), (250, "Wachtell, Lipton,"), (450, "(212) 403-2000")),
                  _line(145, (250, "Rosen & Katz")),
                  _line(175, (50, "Mr. Arthur Golden"), (250, "Davis, Polk"), (450, "(212) 450-4800")),
                  _line(400, (50, "Thank you for your cooperation and have a nice day.")))
    assert kv == {"recipient_s": "Mr. Meyer Koplow", "company": "Wachtell, Lipton, Rosen & Katz",
                  "fax_no": "(212) 403-2000", "recipient_s_2": "Mr. Arthur Golden", "company_2": "Davis, Polk",
                  "fax_no_2": "(212) 450-4800"}


def test_form_paragraph_value_runs_on_until_a_gap_or_label(local):
    kv = _form_kv(local, _line(100, (50, "SALES FORCE INVOLVEMENT:")),
                  _line(116, (50, "They have crew-worked distribution, and it is reported")),
                  _line(132, (50, "that they may crew-work it again.")),
                  _line(148, (50, "CHAINS ACCEPTANCE:")),
                  _line(164, (50, "This has not been a problem.")),
                  _line(260, (50, "Printed in the United States by the office of records")))
    assert kv == {"sales_force_involvement": "They have crew-worked distribution, and it is reported that they "
                                             "may crew-work it again.",
                  "chains_acceptance": "This has not been a problem."}


def test_form_capital_labels_glued_to_their_values(local):
    kv = _form_kv(local, _line(100, (50, "STUDY NUMBER I-7016.401")),
                  _line(130, (50, "INITIATION DATEOctober 27, 1986")),
                  _line(160, (50, "REASON FOR THE AMENDMENT __ Request from sponsor")))
    assert kv == {"study_number": "I-7016.401", "initiation_date": "1986-10-27",
                  "reason_for_the_amendment": "Request from sponsor"}


def test_form_noise_titles_and_check_boxes(local):
    kv = _form_kv(local, _line(60, (300, "CONFIDENTIAL FACSIMILE")), _line(76, (290, "TRANSMISSION COVER SHEET")),
                  _line(100, (600, "Xe: Gad")),
                  _line(130, (50, "Client No.:"), (200, "___")),
                  _line(160, (50, "© Media type"), (300, "Direct Mail")),
                  _line(190, (50, "© Coupon Value"), (300, "$1.50 OFF PACK")))
    assert kv == {"media_type": "Direct Mail", "coupon_value": "$1.50 OFF PACK"}


def test_form_label_wrapped_over_lines_and_values_owned_by_the_nearest_label(local):
    kv = _form_kv(local, _line(100, (50, "EFFECTIVENESS OF THE")), _line(114, (50, "DISTRIBUTION ALLOWANCE:"),
                                                                          (240, "Has been most helpful")),
                  _line(160, (50, "EFFECTIVENESS OF"), (300, "WHOLESALE ALLOWANCE:")),
                  _line(190, (50, "DIRECT ACCOUNT CHAINS:")),
                  _line(206, (50, "Eagle Foods is the only void in the region.")))
    assert kv == {"effectiveness_of_the_distribution_allowance": "Has been most helpful",
                  "direct_account_chains": "Eagle Foods is the only void in the region."}


def test_form_value_runs_along_its_row_to_the_next_label(local):
    kv = _form_kv(local, _line(100, (50, "DIV. NAME / NO:"), (170, "Nassau"), (230, "107"), (400, "DATE:"),
                               (450, "1/24/97")),
                  _line(140, (50, "Washington, DC 20036 Tel 202-785-9700 Fax 202-887-0680")))
    assert kv["div_name_no"] == "Nassau 107" and kv["date"] == "1997-01-24"
    assert (kv["tel"], kv["fax"]) == ("202-785-9700", "202-887-0680")


def test_form_long_labels_instructions_and_ruled_blanks(local):
    kv = _form_kv(local, _line(100, (50, "RETENTION FILE REORGANIZED AND RE-LABELED BY THE OFFICE:")),
                  _line(125, (150, "Wayne Baughan")),
                  _line(200, (50, "AMENDMENT (Attach additional sheets as necessary)")),
                  _line(225, (150, "see attached")),
                  _line(300, (50, "Signature: ________")),
                  _line(325, (50, "Return this form to the personnel office by Friday.")))
    assert kv == {"retention_file_reorganized_and_re_labeled_by_the_office": "Wayne Baughan",
                  "amendment_attach_additional_sheets_as_necessary": "see attached"}


def test_form_doubted_handwriting_drops_words_but_keeps_figures(local):
    page = _form(_line(100, (50, "CLIENT NO.:"), (200, "8557.02")), _line(130, (50, "BRAND:"), (200, "Kool Wert")))
    for line in page["lines"]:
        line["words"][-1]["confidence"] = line["words"][-2]["confidence"] = 20
    assert local.extract("form", [page]).data["kv"] == {"client_no": "8557.02"}


def test_form_capital_label_starting_with_the_figure_it_is_about(local):
    kv = _form_kv(local, _line(100, (50, "$7.00 CARTON COUPON/BUYDOWN: Effective in those retail calls")),
                  _line(130, (50, "40c OFF PACK: Well received")),
                  _line(160, (50, "12 boxes: sent on Monday")))
    assert kv == {"7_00_carton_coupon_buydown": "Effective in those retail calls", "40c_off_pack": "Well received"}


def test_form_list_of_short_values_under_a_label(local):
    kv = _form_kv(local, _line(100, (300, "ITEMS")),
                  _line(128, (216, "."), (308, "BASEBALL CAP")),
                  _line(156, (307, "WATER BOTTLES")),
                  _line(184, (309, "1500")),
                  _line(300, (50, "SUBJECT:")), _line(318, (55, "Kool Waterfall")),
                  _line(346, (55, "Sent by mail to all offices.")))
    assert kv == {"items": "BASEBALL CAP", "items_2": "WATER BOTTLES", "subject": "Kool Waterfall"}


def test_form_paragraph_of_tight_lines_whose_boxes_overlap(local):
    kv = _form_kv(local, _line(100, (50, "NOTE: THIS MESSAGE IS INTENDED ONLY FOR THE ADDRESSEE"), height=28),
                  _line(113, (60, "AND MAY CONTAIN PRIVILEGED INFORMATION. If you are not"), height=28),
                  _line(126, (60, "the intended recipient, please call us."), height=28))
    assert kv == {"note": "THIS MESSAGE IS INTENDED ONLY FOR THE ADDRESSEE AND MAY CONTAIN PRIVILEGED "
                          "INFORMATION. If you are not the intended recipient, please call us."}


def test_form_ruled_table_header_read_with_bars_and_mixed_case(local):
    # OCR reads the column rules as bars and the capitals of a faint header in mixed case
    kv = _form_kv(local, _line(100, (50, "NAME OF AcCOUNT | voLUME | sToRes|")),
                  _line(125, (50, "Pollock Candy")),
                  _line(137, (50, "McKeesport Co."), (180, "521/42"), (245, "150")))
    assert kv == {"name_of_account": "Pollock Candy", "name_of_account_2": "McKeesport Co.",
                  "volume": "521/42", "stores": "150"}


def test_form_doubted_words_kept_in_a_table_column_under_its_header(local):
    page = _form(_line(100, (50, "NAME OF ACCOUNT"), (250, "CITY")),
                 _line(125, (50, "Kroger"), (250, "Dayton")),
                 _line(150, (50, "WH Smith"), (250, "a")),
                 _line(300, (50, "BRAND:"), (200, "Kool Wert")))
    for line in page["lines"][1:]:
        for word in line["words"]:
            word["confidence"] = 20
    kv = local.extract("form", [page]).data["kv"]
    assert kv == {"name_of_account": "Kroger", "city": "Dayton", "name_of_account_2": "WH Smith"}


def test_form_table_header_printed_over_two_lines(local):
    kv = _form_kv(local, _line(100, (50, "DIRECT ACCOUNTS WITHIN THE REGION")),
                  _line(130, (200, "IND/LOR"), (300, "NO. OF")),
                  _line(143, (50, "NAME OF ACCOUNT"), (200, "VOLUME"), (300, "STORES")),
                  _line(165, (50, "Kroger"), (200, "104/22"), (300, "18")))
    assert kv["name_of_account"] == "Kroger"
    assert (kv["ind_lor_volume"], kv["no_of_stores"]) == ("104/22", "18")
