"""The `shop` fixture: see tests/support/release_shop.py."""

from release_shop import shop

__all__ = ["shop"]
