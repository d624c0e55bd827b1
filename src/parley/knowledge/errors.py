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
