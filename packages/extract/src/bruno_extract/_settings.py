"""The extraction limits an operator may change, read alike by every service that reads files:
the edge (uploads) and retrieval (what a URL job fetches)."""

from __future__ import annotations

from pydantic import Field

from bruno_core.contract import MAX_DOCUMENT_PAGES
from bruno_core.settings import MIB, ContractLimitSettings
from bruno_extract._document import ExtractionLimits


class ExtractionSettings(ContractLimitSettings):
    """``BRUNO_MAX_FILE_BYTES``, ``BRUNO_MAX_DOCUMENT_PAGES`` and
    ``BRUNO_EXTRACT_TIMEOUT_SECONDS`` beside the contract's document limit.

        class EdgeSettings(ExtractionSettings): ...
        extract(name, raw, limits=EdgeSettings().extraction_limits)
    """

    # PDFs and Word files are larger than the text they hold: their own bound.
    max_file_bytes: int = Field(default=32 * MIB, ge=1)
    max_document_pages: int = Field(default=2000, ge=1, le=MAX_DOCUMENT_PAGES)
    extract_timeout_seconds: float = Field(default=60.0, gt=0)

    @property
    def extraction_limits(self) -> ExtractionLimits:
        """The bounds on reading one file."""
        return ExtractionLimits(
            max_file_bytes=self.max_file_bytes,
            max_text_bytes=self.max_document_bytes,
            max_pages=self.max_document_pages,
            max_seconds=self.extract_timeout_seconds,
        )
