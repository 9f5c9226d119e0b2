#!/usr/bin/env bash
# Runs the shared peer benchmark with the gateway added: nginx upstream, nginx proxy, HAProxy +
# jwt_verify, nginx + njs, and this gateway (one worker), pinned (PIN=1: proxies on cpu 0).
# Prints the summary table; raw results go to /tmp/bench-results/<time>-pinned/.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared}
swift build -c release --product gateway >/dev/null
secret=$(python3 -c "import sys; sys.path.insert(0, '$shared/bench'); import gen_token; print(gen_token.DEFAULT_SECRET)")
export JWT_SECRET=${JWT_SECRET:-$secret} JWT_KID=bench JWT_ISS=bench-issuer
export GATEWAY_API_AUTH_JWT_SECRET=$JWT_SECRET
export EXTRA_TARGET_NAME=gateway EXTRA_TARGET_URL=http://127.0.0.1:18090/api/v3/items/42
export EXTRA_TARGET_CMD="$PWD/.build/release/gateway run --config $PWD/bench/gateway-bench.conf"
PIN=${PIN:-1} REPS=${REPS:-5} "$shared/bench/run.sh" "$@"
