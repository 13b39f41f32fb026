"""The installation's catalog: the chains, assets and venues operators registered."""
