"""A trading system's side of the API in 40 lines: sign a per-call token, post, poll.

    python examples/withdraw.py CLIENT_ID PRIVATE_KEY.pem [BASE_URL]

Needs only `httpx`, `PyJWT` and `cryptography`.
"""

import hashlib
import json
import secrets
import sys
import time
import uuid

import httpx
import jwt
from cryptography.hazmat.primitives import serialization


def call(  # noqa: PLR0917  (a readable example over a tidy signature)
    base: str,
    client_id: str,
    key: object,
    method: str,
    uri: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    now = int(time.time())
    claims = {
        "sub": client_id,
        "uri": uri,
        "method": method,
        "bodyHash": hashlib.sha256(body).hexdigest(),
        "nonce": secrets.token_hex(16),
        "iat": now,
        "exp": now + 30,
    }
    if headers and "Idempotency-Key" in headers:
        claims["idempotencyKey"] = headers["Idempotency-Key"]  # a sent key must be signed
    token = jwt.encode(claims, key, algorithm="EdDSA")
    all_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.request(method, base + uri, content=body, headers=all_headers | (headers or {}))


def main() -> None:
    client_id, key_path = sys.argv[1], sys.argv[2]
    base = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:8000"
    with open(key_path, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    body = json.dumps(
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
    ).encode()
    created = call(
        base, client_id, key, "POST", "/v1/requests", body, {"Idempotency-Key": str(uuid.uuid4())}
    )
    print(created.status_code, json.dumps(created.json(), indent=2))
    request_id = created.json()["id"]
    for _ in range(3):  # long polls: each answers once the status changes, or after 10 s
        current = call(base, client_id, key, "GET", f"/v1/requests/{request_id}?wait=10").json()
        if current["status"] not in ("approved", "signing"):
            break
    print(json.dumps(current, indent=2))


if __name__ == "__main__":
    main()
