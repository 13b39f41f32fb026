"""A trading system's side of the API with the client SDK: create a withdrawal, wait for it.

    python examples/withdraw.py CLIENT_ID_OR_FILE PRIVATE_KEY.pem [BASE_URL]

`custody.client` needs only `httpx`, `PyJWT` and `cryptography`.
"""

import json
import sys
import time

from custody.client import Client, CustodyAPIError


def main() -> None:
    client_id, key_path = sys.argv[1], sys.argv[2]
    base = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:8000"
    with Client.from_files(base, client_id, key_path) as custody:
        try:
            created = custody.create(
                {
                    "type": "withdrawal",
                    "wallet": "hot-eth",
                    "asset": "ETH",
                    "amount": "10000000000000000",  # 0.01 ETH in wei
                    "destination": "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7",
                    "evm": {
                        "nonce": int(time.time()) % 1_000_000,
                        "gas": 21000,
                        "max_fee_per_gas": "30000000000",
                        "max_priority_fee_per_gas": "1000000000",
                    },
                }
            )
        except CustodyAPIError as refused:  # the problem+json: status, title, detail, type
            raise SystemExit(f"{refused.status} {refused.title}: {refused.detail}") from None
        print(json.dumps(created.json, indent=2))
        # Long polls: each answers once the status changes; signed ends it where nothing is
        # broadcast, pending_approval waits for approvers (up to the timeout).
        current = custody.wait(created.id, timeout=30, until="signed")
        print(json.dumps(current.json, indent=2))


if __name__ == "__main__":
    main()
