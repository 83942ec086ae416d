"""Image archives: OCI image layouts and Docker's ``docker save`` format, in tar files.

Exports read a content store and write a tar; imports read a tar, check
every blob and write the content store and image records.  Both run where
the archive file is (the client, over the Content API, or the daemon).
"""

from __future__ import annotations

from .export import ExportOptions, export
from .importer import ImportOptions, import_archive

__all__ = ["ExportOptions", "ImportOptions", "export", "import_archive"]
