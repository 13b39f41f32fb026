"""What the installation knows of its HSM's health: login holds after a refused PIN, and what
each signer process last found (custody.hsmhealth.status)."""
