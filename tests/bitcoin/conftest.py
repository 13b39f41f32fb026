from __future__ import annotations

import bitcointx
import coincurve._libsecp256k1

from tests.api.conftest import api, http, signer  # noqa: F401  (shared fixtures)

# python-bitcointx loads libsecp256k1 with ctypes when it first checks a signature; coincurve's
# wheel carries one (Bitcoin Core's library, its symbols exported), so no system package is
# needed. The script interpreter that runs the witness is bitcointx's own.
bitcointx.set_custom_secp256k1_path(coincurve._libsecp256k1.__file__)
