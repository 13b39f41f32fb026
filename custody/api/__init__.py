"""HTTP API for trading systems (`/v1`) and operations endpoints."""
