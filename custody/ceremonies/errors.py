"""Why a ceremony refused: each message names the problem and never holds a share or a key."""

from __future__ import annotations

from custody.errors import ValidationFailed


class CeremonyRefused(ValidationFailed):
    """The ceremony cannot go ahead as asked; nothing was written or imported."""

    title = "Ceremony refused"
    slug = "ceremony-refused"


class BackupInvalid(CeremonyRefused):
    """A backup folder is incomplete or was changed since the backup."""

    title = "Backup invalid"
    slug = "backup-invalid"


class SharesInvalid(CeremonyRefused):
    """The shares given do not rebuild this backup's key-encryption key."""

    title = "Shares invalid"
    slug = "shares-invalid"
