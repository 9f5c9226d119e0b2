#!/usr/bin/env bash
# The token engine end to end: a new key, an access token for "demo", its verification, and the
# rules that refuse a tampered and a mis-used token.
set -euo pipefail
cd "$(dirname "$0")/.."
g=.build/release/gateway
[[ -x $g ]] || g=.build/debug/gateway
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$g version
$g keys generate > "$dir/keys.json"
chmod 600 "$dir/keys.json"
echo "== a new key ring (secret not shown):"
grep -E '"(kid|alg|state)"' "$dir/keys.json"
token=$($g token issue --keys "$dir/keys.json" --sub demo)
echo "== an access token for \"demo\":"
echo "$token"
echo "== verified:"
$g token verify --keys "$dir/keys.json" "$token"
echo "== the same token used as a refresh token:"
$g token verify --keys "$dir/keys.json" --use refresh "$token" || true
echo "== with its last signature character changed:"
last=${token: -1}; if [[ $last == A ]]; then sub=B; else sub=A; fi
$g token verify --keys "$dir/keys.json" "${token%?}$sub" || true
