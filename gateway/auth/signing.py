"""The keys that sign and verify access tokens, and the JWKS that publishes
the public ones.

With HS256 the shared secret both signs and verifies and nothing is
published.  With EdDSA or RS256 the configured private key signs, with a
``kid`` that is its RFC 7638 thumbprint; it and any earlier keys listed in
``jwt.verify_key_files`` verify, so a key can be rotated without cutting off
tokens it signed before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from gateway.config import ConfigError, JwtConfig

MIN_RSA_BITS = 2048
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyRing:
    algorithm: str
    # What jwt.encode signs with: the secret bytes or a private key object.
    signing_key: Any = field(repr=False)
    signing_kid: str | None
    # kid -> what jwt.decode verifies with; for HS256 the one key under "".
    verifying: Mapping[str, Any] = field(repr=False)
    public_jwks: tuple[dict[str, str], ...] = ()
    # Key material for the server-side secrets derived from it.
    root_secret: bytes = field(default=b"", repr=False)

    @classmethod
    def load(cls, jwt: JwtConfig) -> KeyRing:
        """The keys the configuration names; ConfigError when one is unusable."""
        if jwt.algorithm == "HS256":
            secret = jwt.secret.encode("utf-8")
            return cls("HS256", secret, None, {"": secret}, (), secret)

        private = _load_private(jwt)
        _require_algorithm("jwt.private_key_file", jwt.algorithm, private.public_key())
        publics = [private.public_key()]
        for path in jwt.verify_key_files:
            key = _load_public(Path(path))
            _require_algorithm("jwt.verify_key_files", jwt.algorithm, key)
            publics.append(key)
        jwks = tuple(_jwk(jwt.algorithm, key) for key in publics)
        verifying = {
            entry["kid"]: key for entry, key in zip(jwks, publics, strict=True)
        }
        raw = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        root = jwt.secret.encode() if jwt.secret else hashlib.sha256(raw).digest()
        return cls(jwt.algorithm, private, jwks[0]["kid"], verifying, jwks, root)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": list(self.public_jwks)}

    def derive(self, purpose: bytes) -> bytes:
        """A secret for *purpose*, independent of every other purpose's."""
        return hmac.new(self.root_secret, purpose, hashlib.sha256).digest()


def _load_private(jwt: JwtConfig) -> PrivateKey:
    name = "jwt.private_key" if jwt.private_key else "jwt.private_key_file"
    try:
        pem = (
            jwt.private_key.encode()
            if jwt.private_key
            else Path(jwt.private_key_file).read_bytes()
        )
    except OSError as exc:
        reason = f"cannot read {jwt.private_key_file}: {exc.strerror}"
        raise ConfigError(f"{name}: {reason}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{name}: not an unencrypted PEM private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"{name}: must be an Ed25519 or RSA key")
    return key


def _load_public(path: Path) -> PublicKey:
    name = "jwt.verify_key_files"
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    try:
        key: Any = serialization.load_pem_public_key(pem)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        except (ValueError, TypeError):
            raise ConfigError(f"{name}: {path} is not a PEM key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ConfigError(f"{name}: {path} must be an Ed25519 or RSA key")
    return key


def _require_algorithm(name: str, algorithm: str, key: PublicKey) -> None:
    if algorithm == "EdDSA" and not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"{name}: EdDSA needs an Ed25519 key")
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPublicKey):
            raise ConfigError(f"{name}: RS256 needs an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{name}: RSA keys need at least {MIN_RSA_BITS} bits")


def _jwk(algorithm: str, key: PublicKey) -> dict[str, str]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        fields = json.loads(OKPAlgorithm.to_jwk(key))
        members = {"crv": fields["crv"], "kty": "OKP", "x": fields["x"]}
    else:
        fields = json.loads(RSAAlgorithm.to_jwk(key))
        members = {"e": fields["e"], "kty": "RSA", "n": fields["n"]}
    # RFC 7638: the thumbprint hashes the required members in sorted order.
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**members, "kid": kid, "alg": algorithm, "use": "sig"}
