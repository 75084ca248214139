"""Bearer API tokens, each belonging to an owner, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from aconnect.files import atomic_write


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def create(self, owner: str) -> str:
        """A new token for ``owner``; only its hash is kept."""
        token = secrets.token_urlsafe(32)
        tokens = self._load()
        tokens[_digest(token)] = owner
        atomic_write(self.path, json.dumps(tokens).encode(), mode=0o600)
        return token

    def owner(self, token: str) -> str | None:
        return self._load().get(_digest(token))

    def __len__(self) -> int:
        return len(self._load())
