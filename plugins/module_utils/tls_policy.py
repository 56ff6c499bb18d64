# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TLS 1.2 cipher suites the engine and the agents serve: forward secrecy and AEAD only
(ECDHE/DHE with AES-GCM or ChaCha20-Poly1305; no CBC, no static RSA, no SHA-1 MAC). TLS 1.3's
suites are all of that kind and are not set here. Proved by sslyze in
tests/integration/test_tls_scan.py.

Node-side too (the Linux agent): Python 3.6+, standard library only.
"""

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP"
