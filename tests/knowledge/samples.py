"""Real small files for the extraction tests, built the way real tools write them."""

from __future__ import annotations

import io
import zipfile

import docx
from fpdf import FPDF
from PIL import Image


def make_pdf(
    pages: list[tuple[str | None, str]], *, title: str | None = None, password: str | None = None
) -> bytes:
    """One page per (outline heading or None, text); headings become PDF bookmarks."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.set_font("Helvetica", size=11)
    for heading, text in pages:
        pdf.add_page()
        if heading:
            pdf.start_section(heading, level=0)
            pdf.set_font("Helvetica", "B", size=15)
            pdf.cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def make_image_only_pdf() -> bytes:
    """A 'scanned' PDF: each page holds a picture and vector shapes, no text layer."""
    picture = io.BytesIO()
    Image.new("RGB", (120, 80), (200, 30, 30)).save(picture, format="PNG")
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.image(io.BytesIO(picture.getvalue()), x=20, y=20, w=120)
        pdf.rect(10, 150, 80, 40)
    return bytes(pdf.output())


def make_docx(*, core_title: str | None = None) -> bytes:
    document = docx.Document()
    if core_title:
        document.core_properties.title = core_title
    document.add_heading("Returns policy", level=1)
    document.add_paragraph("Items can be returned within 30 days of delivery.")
    document.add_heading("Refunds", level=2)
    document.add_paragraph("Refunds are paid to the original payment method.")
    table = document.add_table(rows=3, cols=2)
    for row, (region, days) in zip(
        table.rows, [("Region", "Days"), ("Europe", "14"), ("Elsewhere", "30")], strict=True
    ):
        row.cells[0].text = region
        row.cells[1].text = days
    document.add_heading("Shipping", level=1)
    document.add_paragraph("We ship worldwide with tracked parcels.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def add_member(data: bytes, name: str, *, zeros: int) -> bytes:
    """Append a member of `zeros` zero bytes (deflated: a few hundred bytes per MB)."""
    out = io.BytesIO(data)
    with (
        zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(name, "w", force_zip64=True) as member,
    ):
        block = bytes(1024 * 1024)
        for _ in range(zeros // len(block)):
            member.write(block)
        member.write(bytes(zeros % len(block)))
    return out.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()
