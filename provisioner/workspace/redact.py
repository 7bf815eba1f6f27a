"""Keeping secrets out of what the tool prints and keeps."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

MASK = "********"


class Redactor:
    def __init__(self, secrets: Iterable[str]):
        # longest first, so a secret containing another is masked whole
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return value

    def tree(self, root: Path) -> int:
        """Mask secrets in every file under root; returns the number of files rewritten."""
        if not self.secrets:
            return 0
        rewritten = 0
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                content = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            masked = self.text(content)
            if masked != content:
                path.write_text(masked, encoding="utf-8")
                rewritten += 1
        return rewritten
