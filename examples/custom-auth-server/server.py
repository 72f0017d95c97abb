#!/usr/bin/env python3
"""A small custom authentication server for Wardgate and the AIO MQTT broker.

It implements the AIO custom authentication contract, API version 0.5.0
(POST /?api-version=0.5.0 over HTTPS, JSON bodies; see docs/security.md):

  connect: {"type": "connect", "username"?, "password"? (base64), "certs"? (PEM),
            "enhancedAuthentication"?: {"method", "data"? (base64)}}
  auth:    {"type": "auth", "enhancedAuthentication": {"method", "data"?}}

  200 {"attributes": {...}, "expiry"?: RFC 3339}   the client passes
  403 {"reason": <CONNACK code>, "message": "..."}  the client fails
  422 {"supportedVersions": ["0.5.0"]}              unsupported api-version

Users come from a TOML file in the format of the broker's passwords.toml (and of the AIO sample
auth-server-user-pass-mqtt), made with `wardgate passwd`:

  [alice]
  password = "$pbkdf2-sha512$i=210000,l=64$<salt>$<hash>"
  [alice.attributes]
  floor = "1"

Optional per-user fields: `expiry_seconds` (credentials expire that long after authentication)
and `deny_reason` (always refuse this user with that CONNACK code, e.g. 138 = banned).

Clients authenticate with the CONNECT username and password, or with MQTT v5 enhanced
authentication method `WG-USERPASS` whose data is `username:password` (which also works for
re-authentication, AUTH 0x19). Standard library only (Python 3.11+).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API_VERSIONS = ["0.5.0"]
ENHANCED_METHOD = "WG-USERPASS"
BAD_USERNAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87


def b64_nopad(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def verify_hash(stored: str, password: bytes) -> bool:
    """Checks a `$pbkdf2-sha512$i=<n>,l=<len>$<salt>$<hash>` string in constant time."""
    parts = stored.strip().lstrip("$").split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2-sha512":
        return False
    params = dict(p.split("=", 1) for p in parts[1].split(",") if "=" in p)
    try:
        iterations = int(params["i"])
        salt, expected = b64_nopad(parts[2]), b64_nopad(parts[3])
    except (KeyError, ValueError, binascii.Error):
        return False
    actual = hashlib.pbkdf2_hmac("sha512", password, salt, iterations, len(expected))
    return hmac.compare_digest(actual, expected)


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        with open(args.users, "rb") as f:
            self.users = tomllib.load(f)
        self.required_headers = dict(h.split("=", 1) for h in args.require_header)
        self.fail_first_422 = args.fail_first_422
        self.delay = args.delay
        self.lock = threading.Lock()
        self.requests = 0


class Handler(BaseHTTPRequestHandler):
    server_version = "wardgate-custom-auth-example/1"
    state: State

    def log_message(self, fmt: str, *args: object) -> None:  # requests, never credentials
        sys.stderr.write("custom-auth: " + (fmt % args) + "\n")

    def reply(self, status: int, body: object) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.reply(405, "use POST")

    def do_POST(self) -> None:  # noqa: N802
        st = self.state
        with st.lock:
            st.requests += 1
            first = st.requests == 1
        if st.delay:
            time.sleep(st.delay)
        url = urlsplit(self.path)
        version = parse_qs(url.query).get("api-version", [""])[0]
        if url.path not in ("", "/"):
            return self.reply(404, "not found")
        if version not in API_VERSIONS or (st.fail_first_422 and first):
            return self.reply(422, {"supportedVersions": API_VERSIONS})
        for k, v in st.required_headers.items():
            if self.headers.get(k) != v:
                return self.reply(403, {"reason": NOT_AUTHORIZED, "message": f"missing header {k}"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            kind = body["type"]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, "the body is not a request of the 0.5.0 contract")
        if kind == "connect":
            username = body.get("username")
            password = body.get("password")
            enhanced = body.get("enhancedAuthentication")
        elif kind == "auth":
            username = password = None
            enhanced = body.get("enhancedAuthentication")
        else:
            return self.reply(400, f"unknown type {kind!r}")
        if enhanced is not None:
            if enhanced.get("method") != ENHANCED_METHOD:
                return self.reply(403, {"reason": 0x8C, "message": "unsupported authentication method"})
            try:
                user_pass = base64.b64decode(enhanced.get("data") or "").decode()
                username, secret = user_pass.split(":", 1)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return self.reply(403, {"reason": NOT_AUTHORIZED, "message": "malformed authentication data"})
            secret = secret.encode()
        elif username is not None:
            try:
                secret = base64.b64decode(password or "", validate=True)
            except binascii.Error:
                return self.reply(403, {"reason": BAD_USERNAME_OR_PASSWORD, "message": "malformed password"})
        else:
            return self.reply(403, {"reason": NOT_AUTHORIZED, "message": "no credentials"})
        user = st.users.get(username)
        if not isinstance(user, dict) or not verify_hash(str(user.get("password", "")), secret):
            return self.reply(403, {"reason": BAD_USERNAME_OR_PASSWORD, "message": "bad username or password"})
        if "deny_reason" in user:
            return self.reply(403, {"reason": int(user["deny_reason"]), "message": f"{username} is refused"})
        answer: dict[str, object] = {"attributes": {k: str(v) for k, v in user.get("attributes", {}).items()}}
        if "expiry_seconds" in user:
            expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=float(user["expiry_seconds"]))
            answer["expiry"] = expiry.isoformat(timespec="seconds").replace("+00:00", "Z")
        return self.reply(200, answer)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", required=True, help="TOML file of users (passwords.toml format)")
    p.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    p.add_argument("--key", required=True, help="server private key (PEM)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    p.add_argument("--client-ca", help="require a client certificate issued by this CA (PEM)")
    p.add_argument("--require-header", action="append", default=[], metavar="NAME=VALUE",
                   help="refuse requests without this header (repeatable)")
    p.add_argument("--fail-first-422", action="store_true",
                   help="answer the first request with 422 (as a server mid-upgrade would)")
    p.add_argument("--delay", type=float, default=0, help="seconds to wait before answering")
    args = p.parse_args()

    Handler.state = State(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)
    # Python's default listen backlog is 5: a burst of clients connecting at once (each CONNECT is
    # a request) would overflow it and wait in SYN retries past the broker's 5 s timeout.
    ThreadingHTTPServer.request_queue_size = 1024
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    # The handshake happens on first read, in the request thread: a slow client blocks no one.
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    print(f"listening on {args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
