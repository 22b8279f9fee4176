"""Accounts: tokens, passwords, field rules, auth throttling and client addresses.

Pure building blocks for the auth endpoints: no database (that is `parley.store`) and no HTTP (that
is `parley.api`). Everything here is deterministic given its settings and, where time matters, an
injected clock.
"""

from parley.accounts.client_ip import client_ip, is_loopback, rate_limit_key
from parley.accounts.jwt_checks import InvalidToken
from parley.accounts.opaque import OpaqueToken, hash_opaque, new_opaque_token
from parley.accounts.passwords import PasswordHasher, VerifyResult, generate_password
from parley.accounts.throttle import AuthThrottle, Decision, SlidingWindowLimiter
from parley.accounts.tokens import AccessClaims, ChannelClaims, TokenService
from parley.accounts.validation import FieldErrors, ParsedBody, parse_string_fields

__all__ = [
    "AccessClaims",
    "AuthThrottle",
    "ChannelClaims",
    "Decision",
    "FieldErrors",
    "InvalidToken",
    "OpaqueToken",
    "ParsedBody",
    "PasswordHasher",
    "SlidingWindowLimiter",
    "TokenService",
    "VerifyResult",
    "client_ip",
    "generate_password",
    "hash_opaque",
    "is_loopback",
    "new_opaque_token",
    "parse_string_fields",
    "rate_limit_key",
]
