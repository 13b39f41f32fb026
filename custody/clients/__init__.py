"""Trading-system clients: registration and request authentication."""
