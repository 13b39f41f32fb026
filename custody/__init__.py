"""custody: a self-hosted custody and signing service."""

__version__ = "0.1.0"
