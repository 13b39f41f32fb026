"""Configuration of one installation: the `CUSTODY_HOME` folder, `custody.toml`, environment."""

from custody.settings.config import (
    Environment,
    LogFormat,
    RelyingParty,
    Settings,
    load_settings,
    resolve_home,
)

__all__ = ["Environment", "LogFormat", "RelyingParty", "Settings", "load_settings", "resolve_home"]
