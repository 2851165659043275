from pathlib import Path

import pytest

from ingest import LoadError, load
from tests.helpers import make_pdf


def _load(path: Path):
    return load(path, path.read_bytes())


def test_markdown_sections_follow_headings_and_front_matter_is_dropped(tmp_path):
    md = tmp_path / "policy.md"
    md.write_text(
        "---\ntitle: Refund Policy\nlayout: page\n---\n{% include nav.html %}\nIntro line.\n\n"
        "## Annual plans\n\nProrated refunds.\n\n## Monthly plans\n\nNo refunds after 14 days.\n"
    )
    parsed = _load(md)
    assert parsed.title == "Refund Policy"
    assert "layout" not in parsed.text and "{%" not in parsed.text
    sections = {b.section: parsed.text[b.start : b.end] for b in parsed.blocks}
    assert "Prorated refunds." in sections["Annual plans"]
    assert "No refunds after 14 days." in sections["Monthly plans"]
    assert "Intro line." in sections[None]


def test_html_keeps_visible_text_and_title_only(tmp_path):
    page = tmp_path / "sec.html"
    page.write_text(
        "<html><head><title>Security</title><style>.x{color:red}</style></head><body>"
        "<nav>Home | Pricing</nav><h1>Encryption</h1><p>Data is encrypted with <b>AES-256</b>.</p>"
        "<script>var SECRET=1;</script><h2>SSO</h2><p>SAML on Business.</p></body></html>"
    )
    parsed = _load(page)
    assert parsed.title == "Security"
    assert "SECRET" not in parsed.text and "color" not in parsed.text and "Pricing" not in parsed.text
    assert "Data is encrypted with AES-256." in parsed.text
    assert [b.section for b in parsed.blocks] == ["Encryption", "SSO"]


def test_pdf_pages_keep_their_numbers(tmp_path):
    pdf = make_pdf(
        tmp_path / "sla.pdf", ["Uptime is 99.9 percent.", "Service credits are 10 percent.", "Claims within 30 days."]
    )
    parsed = _load(pdf)
    assert [b.page for b in parsed.blocks] == [1, 2, 3]
    page2 = parsed.blocks[1]
    assert "Service credits" in parsed.text[page2.start : page2.end]


def test_pdf_with_empty_user_password_opens(tmp_path):
    pdf = make_pdf(tmp_path / "open.pdf", ["Readable after decryption."], password="")
    assert "Readable after decryption." in _load(pdf).text


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.pdf", b"", "empty file"),
        ("truncated.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "corrupt"),
        ("binary.txt", b"\x00\x01\x02\x03binary\x00" * 100, "binary"),
        ("notes.odt", b"PK\x03\x04", "unsupported file type"),
        ("notes.docx", b"PK\x03\x04", "not a readable Word document"),
    ],
)
def test_bad_files_raise_load_error_naming_file_and_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError) as err:
        _load(path)
    assert name in str(err.value)
    assert reason in err.value.reason


def test_password_protected_pdf_says_a_password_is_needed(tmp_path):
    pdf = make_pdf(tmp_path / "locked.pdf", ["secret"], password="hunter2")
    with pytest.raises(LoadError, match="password"):
        _load(pdf)


def test_non_utf8_text_is_read_with_a_warning(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Caf\u00e9 opening hours: 9 to 5.".encode("cp1252"))
    parsed = _load(path)
    assert "Café" in parsed.text and parsed.encoding.startswith("cp125")  # a short text fits several code pages
    assert parsed.warnings and parsed.encoding in parsed.warnings[0] and "detected" in parsed.warnings[0]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_byte_order_marks_and_utf16_without_a_mark_are_honoured(tmp_path, encoding):
    text = "Rückerstattung: 14 Tage. 返金は14日以内です。Refunds take ten days.\n"
    path = tmp_path / "policy.txt"
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # no mark: recognised by charset-normalizer
        path.write_bytes(data)
    else:
        assert data[:2] in (b"\xff\xfe", b"\xfe\xff") or data.startswith(b"\xef\xbb\xbf")
        path.write_bytes(data)
    parsed = _load(path)
    assert parsed.text.strip() == text.strip(), parsed.encoding
    assert parsed.encoding.replace("_", "-").startswith(encoding.split("-sig")[0][:6])


def test_text_whose_encoding_cannot_be_told_fails_with_that_reason(tmp_path):
    path = tmp_path / "noise.txt"
    path.write_bytes(bytes(range(128, 256)) * 40)
    with pytest.raises(LoadError, match="encoding|binary"):
        _load(path)


def test_markdown_and_html_tables_become_one_readable_row_per_paragraph(tmp_path):
    md = (
        "# Limits\n\nIntro line.\n\n| Plan | Requests per minute |\n|---|---|\n| Team | 300 |\n| Business | 1,200 |\n\n"
        "| Code | Meaning |\n|---|---|\n| D05 | Suspected fraud. Do not retry. |\n\nAfter the tables.\n"
    )
    parsed = load(tmp_path / "limits.md", md.encode())
    assert "Plan: Team | Requests per minute: 300\n\nPlan: Business | Requests per minute: 1,200" in parsed.text
    assert "Code: D05 | Meaning: Suspected fraud. Do not retry." in parsed.text
    assert "|---" not in parsed.text and "| Team |" not in parsed.text
    # The two tables never merge: the first table's last row and the second's first row are paragraphs apart.
    assert "1,200\n\nCode: D05" in parsed.text
    html = (
        "<html><body><h2>Fees</h2><table><caption>Card fees</caption><thead><tr><th>Method</th><th>Fee</th></tr>"
        "</thead><tbody><tr><td>Domestic cards</td><td>2.6% + $0.30</td></tr><tr><td>Amex</td><td>3.5%"
        "<table><tr><td>inner</td><td>cell</td></tr></table></td></tr></tbody></table><p>Done.</p></body></html>"
    )
    parsed = load(tmp_path / "fees.html", html.encode())
    lines = parsed.text.split("\n\n")
    assert "Card fees" in lines and "Method: Domestic cards | Fee: 2.6% + $0.30" in lines
    assert any(line.startswith("Method: Amex | Fee: 3.5%") and "inner / cell" in line for line in lines)
    assert parsed.blocks[-1].section == "Fees"
