"""Typed application keys through which handlers reach shared resources."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.auth.passwords import PasswordHasher
from gateway.auth.tokens import AccessTokens, PendingRotations
from gateway.config import Config
from gateway.forwarding import TrustedProxies
from gateway.routing import OwnPaths, Router
from gateway.sessions import RevokedSessions, SessionStore
from gateway.users import UserDatabase

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", SessionStore)
USERS = web.AppKey("users", UserDatabase)
HASHER = web.AppKey("hasher", PasswordHasher)
TOKENS = web.AppKey("tokens", AccessTokens)
ROTATION_KEY = web.AppKey("rotation_key", bytes)
PENDING_ROTATIONS = web.AppKey("pending_rotations", PendingRotations)
REVOKED = web.AppKey("revoked", RevokedSessions)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", TrustedProxies)
ROUTER = web.AppKey("router", Router)
UPSTREAM_CLIENT = web.AppKey("upstream_client", aiohttp.ClientSession)
# Paths the gateway answers itself, with their methods, for 405 answers.
OWN_ROUTES = web.AppKey("own_routes", OwnPaths)
