"""Why a file could not become a document: stable codes the API and the job status report."""

from __future__ import annotations

from parley.kit.errors import ParleyError


class UnsupportedFileType(ParleyError):
    status = 422
    code = "unsupported_file_type"
    title = "This file type is not supported (PDF, DOCX, HTML, Markdown or plain text)"


class CorruptFile(ParleyError):
    status = 422
    code = "corrupt_file"
    title = "The file is damaged or is not what its type says"


class EmptyDocument(ParleyError):
    status = 422
    code = "empty_document"
    title = "The document contains no extractable text"


class DocumentTooLarge(ParleyError):
    """Over a size limit after decompression or in page count (zip bombs, page floods)."""

    status = 422
    code = "document_too_large"
    title = "The document is larger than the allowed limit"


class FileTooLarge(ParleyError):
    status = 413
    code = "file_too_large"
    title = "The file is larger than the allowed upload size"


class HtmlTooDeep(ParleyError):
    """Nesting past `PARLEY_INGEST_MAX_HTML_DEPTH`: HTML tree building costs time quadratic in
    depth, so such a file is refused before it is parsed."""

    status = 422
    code = "ingest_html_too_deep"
    title = "The HTML is nested deeper than allowed"


class TooManyElements(ParleyError):
    status = 422
    code = "ingest_too_many_elements"
    title = "The HTML has more elements than allowed"


class TextTooLarge(ParleyError):
    status = 422
    code = "ingest_text_too_large"
    title = "The document holds more text than allowed"


class TooManyChunks(ParleyError):
    status = 422
    code = "ingest_too_many_chunks"
    title = "The document makes more chunks than allowed"


class TimeBudgetExceeded(ParleyError):
    status = 422
    code = "ingest_time_budget_exceeded"
    title = "Ingesting the document took longer than its time budget"


def by_code(code: str) -> type[ParleyError]:
    """The error class for a code reported by the extraction process."""
    for cls in (
        UnsupportedFileType,
        CorruptFile,
        EmptyDocument,
        DocumentTooLarge,
        FileTooLarge,
        HtmlTooDeep,
        TooManyElements,
        TextTooLarge,
        TooManyChunks,
        TimeBudgetExceeded,
    ):
        if cls.code == code:
            return cls
    return CorruptFile
