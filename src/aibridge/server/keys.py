"""CurveZMQ key pairs: ``aibridge keys generate`` writes them, the server and clients load them.

Files are ZeroMQ's own certificate format (``zmq.auth``): ``<name>.key`` holds only the public
key (give it to the EA), ``<name>.key_secret`` holds both (keep it on the server, mode 0600).
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth

from aibridge.errors import AibridgeError


class CurveKeyError(AibridgeError, ValueError):
    """A key file is missing or unreadable (message is user-facing)."""


def curve_available() -> bool:
    return bool(zmq.has("curve"))


def generate_keys(
    directory: Path, name: str = "server", overwrite: bool = False
) -> tuple[Path, Path]:
    """Create ``<name>.key`` and ``<name>.key_secret`` in ``directory``; returns both paths."""
    if not curve_available():
        raise CurveKeyError("this libzmq build has no CurveZMQ support")
    directory.mkdir(parents=True, exist_ok=True)
    public = directory / f"{name}.key"
    secret = directory / f"{name}.key_secret"
    if not overwrite and (public.exists() or secret.exists()):
        raise CurveKeyError(f"{public} or {secret} already exists (use --force to overwrite)")
    public_path, secret_path = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret_path, 0o600)
    return Path(public_path), Path(secret_path)


def load_server_keys(secret_file: Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a ``.key_secret`` file."""
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"cannot read CurveZMQ secret key {secret_file}: {exc}") from None
    if not secret:
        raise CurveKeyError(f"{secret_file} holds no secret key (did you pass the public .key?)")
    return public, secret


def load_public_key(key_file: Path) -> bytes:
    """The server's public key for a client (``server.key``; a ``.key_secret`` works too)."""
    try:
        public, _ = zmq.auth.load_certificate(str(key_file))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"cannot read CurveZMQ public key {key_file}: {exc}") from None
    return public
