"""Raw PyKCS11 secp256k1 signs per second in one process: the HSM's ceiling on this machine.

    python -m bench.raw HOME COUNT     # prints the rate; SOFTHSM2_CONF must name HOME's token

Run in a process of its own by `bench.run`: each installation has its own development token,
and a PKCS#11 module reads its configuration once per process.
"""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path


def raw_signs_per_second(home: Path, count: int) -> float:
    from custody.hsm.devtoken import find_softhsm_module, read_pin_file
    from custody.hsm.pkcs11 import Pkcs11Token

    pin = read_pin_file(home / "hsm" / "pins.json")
    with Pkcs11Token(find_softhsm_module(), "custody-dev", pin) as token:
        digests = [secrets.token_bytes(32) for _ in range(count)]
        token.sign_secp256k1("hot-eth-key", digests[0])  # warm the handle cache
        start = time.perf_counter()
        for digest in digests:
            token.sign_secp256k1("hot-eth-key", digest)
        return count / (time.perf_counter() - start)


if __name__ == "__main__":
    print(raw_signs_per_second(Path(sys.argv[1]), int(sys.argv[2])))
