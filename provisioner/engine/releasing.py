"""What the CLI asks of the release path (CHG-1..4): the site's release book and the names it shows."""

from __future__ import annotations

from provisioner.releases.history import Release
from provisioner.releases.rules import release_path, require_release
from provisioner.releases.service import ReleaseBook, describe
from provisioner.site.load import LoadedSite

__all__ = ["Release", "ReleaseBook", "describe", "open_book", "release_path", "require_release"]


def open_book(site: LoadedSite) -> ReleaseBook:
    return ReleaseBook.open(site)
