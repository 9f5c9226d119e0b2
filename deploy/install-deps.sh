#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine with the Swift toolchain lacks to build, run and test the
# gateway. Idempotent and quiet: apt-get runs only when a package is missing.
#   build:  libssl-dev (OpenSSL 3), libnghttp2-dev (HTTP/2), pkg-config
#   tests:  redis-server (started by the tests on a free loopback port; never as a service),
#           python3-jwt (PyJWT, interoperability tests), python3-cryptography (the tests' own CA and IdP keys),
#           python3-prometheus-client (a real parser of /metrics), python3-h2 and python3-httpx (HTTP/2
#           clients), nghttp2-client (nghttp, h2load), curl
set -euo pipefail

packages=(libssl-dev libnghttp2-dev pkg-config redis-server python3-jwt python3-cryptography python3-prometheus-client python3-h2 python3-httpx nghttp2-client curl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    sudo=""
    if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
    echo "install-deps: installing ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "install-deps: the Swift 6 toolchain is not on PATH" >&2; exit 1; }
