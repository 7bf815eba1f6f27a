"""provisioner: separated development, test and production environments, enforced and proven (ISO 27001 A.8.31)."""

__version__ = "0.1.0"
