#!/usr/bin/env bash
# HTTP/2 side by side: h2load (-c CONNS -m STREAMS, h2c with prior knowledge) against nginx's
# plain h2 proxy (the shared config, and the same keeping 1024 idle upstream connections), HAProxy
# 2.6 with jwt_verify serving h2c, and this gateway (one worker), all in
# front of the shared bench's nginx upstream (HTTP/1.1 keep-alive). With PIN=1 (the default) the
# proxy under test runs alone on cpu 0, upstream and h2load on cpu 1; the proxy's cost per
# request is cpu 0's busy time over the requests served (kernel included). Also the gateway over
# HTTP/1.1 (wrk) in the same run, for "an h2 request costs no more than an HTTP/1.1 one".
#
# Usage: bench/run-h2.sh            (DURATION [5], CONNS [64], STREAMS [10], REPS [3], PIN [1])
# Everything binds 127.0.0.1; every process started here is stopped by its pid at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${SHARED:-../shared}
DURATION=${DURATION:-5} CONNS=${CONNS:-64} STREAMS=${STREAMS:-10} REPS=${REPS:-3} PIN=${PIN:-1}
run=$(mktemp -d /tmp/bench-h2.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

pin() { local cpus=$1; shift; if [[ "$PIN" == 1 ]]; then taskset -c "$cpus" "$@"; else "$@"; fi; }
# For `spawn ... &`: the background subshell becomes the program, so $! is its pid to stop.
spawn() { local cpus=$1; shift; if [[ "$PIN" == 1 ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi; }

swift build -c release --product gateway >/dev/null
secret=$(python3 -c "import sys; sys.path.insert(0, '$shared/bench'); import gen_token; print(gen_token.DEFAULT_SECRET)")
token=$(cd "$shared/bench" && JWT_SECRET=$secret JWT_KID=bench JWT_ISS=bench-issuer python3 gen_token.py 2>/dev/null | tail -1)

render() {  # render <template> <name>: @RUN@ -> a directory of its own, @SECRET@ -> the secret
    mkdir -p "$run/$2"/{client_body,proxy,fastcgi,uwsgi,scgi}
    sed -e "s|@RUN@|$run|g" -e "s|@SECRET@|$secret|g" "$1" > "$run/$2.conf"
}

# Upstream (cpu 1), as in the shared bench.
render "$shared/bench/conf/upstream.nginx.conf" upstream
spawn 1 nginx -c "$run/upstream.conf" -g 'daemon off;' & pids+=($!)
# nginx: the shared plain proxy, its listener made h2c.
render "$shared/bench/conf/proxy.nginx.conf" nginx-proxy
sed -i -e 's|listen 127.0.0.1:18081 backlog=4096;|listen 127.0.0.1:18181 http2 backlog=4096;\n        http2_max_concurrent_streams 128;|' "$run/nginx-proxy.conf"
spawn 0 nginx -c "$run/nginx-proxy.conf" -g 'daemon off;' & pids+=($!)
# The same nginx keeping 1024 idle upstream connections (as the gateway does by default), so
# its cost is not that of reconnecting: 640 streams in flight outgrow the shared keepalive 128.
render "$shared/bench/conf/proxy.nginx.conf" nginx-proxy-ka
sed -i -e 's|listen 127.0.0.1:18081 backlog=4096;|listen 127.0.0.1:18183 http2 backlog=4096;\n        http2_max_concurrent_streams 128;|' \
    -e 's|keepalive 128;|keepalive 1024;|' -e "s|$run/nginx-proxy/|$run/nginx-proxy-ka/|g" "$run/nginx-proxy-ka.conf"
spawn 0 nginx -c "$run/nginx-proxy-ka.conf" -g 'daemon off;' & pids+=($!)
# HAProxy: the shared jwt_verify frontend, its listener made h2c.
render "$shared/bench/conf/haproxy.cfg" haproxy
sed -i -e 's|bind 127.0.0.1:18082 backlog 4096|bind 127.0.0.1:18182 proto h2 backlog 4096|' -e 's|^    daemon$||' \
    -e "s|pidfile .*|pidfile $run/haproxy.pid|" "$run/haproxy.conf"
spawn 0 haproxy -f "$run/haproxy.conf" -db & pids+=($!)
# The gateway, one worker.
sed -e 's|127.0.0.1:18090|127.0.0.1:18190|' -e "s|/tmp/bench-gateway-data|$run/gateway-data|" bench/gateway-bench.conf > "$run/gateway.conf"
GATEWAY_API_AUTH_JWT_SECRET=$secret spawn 0 "$root/.build/release/gateway" run --config "$run/gateway.conf" > "$run/gateway.log" 2>&1 & pids+=($!)

names=(nginx-h2-proxy nginx-h2-proxy-ka1024 haproxy-h2-jwt gateway-h2)
urls=(http://127.0.0.1:18181/api/v3/items/42 http://127.0.0.1:18183/api/v3/items/42 http://127.0.0.1:18182/api/v3/items/42
      http://127.0.0.1:18190/api/v3/items/42)
for u in "${urls[@]}"; do
    for _ in $(seq 50); do curl -s -o /dev/null --http2-prior-knowledge "$u" && break; sleep 0.1; done
    code=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --http2-prior-knowledge -H "Authorization: Bearer $token" "$u")
    [[ "$code" == "200 2" ]] || { echo "run-h2: $u answered '$code' with the bench token" >&2; exit 1; }
done

busy() { awk '$1 == "cpu0" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6 }' /proc/stat; }
hz=$(getconf CLK_TCK)
declare -A cost reqs p99
measure() {  # measure <name> <command...>: the proxy's µs of cpu 0 per request, requests/s
    local name=$1; shift
    local before after out n
    before=$(busy)
    out=$(pin 1 "$@" 2>&1)
    after=$(busy)
    if [[ "$1" == h2load ]]; then
        n=$(echo "$out" | awk '/^requests:/ { print $8 }')   # succeeded
    else
        n=$(echo "$out" | awk '/requests in/ { print $1 }')
    fi
    [[ -n "$n" && "$n" -gt 0 ]] || { echo "run-h2: $name served nothing:"; echo "$out"; return; } >&2
    local us=$(( (after - before) * 1000000 / hz * 10 / n ))
    cost[$name]="${cost[$name]:-} $us"
    reqs[$name]="${reqs[$name]:-} $n"
    echo "  $name: $n requests, $(( us / 10 )).$(( us % 10 )) µs of cpu 0 each" >&2
}

for rep in $(seq "$REPS"); do
    echo "rep $rep/$REPS" >&2
    for i in "${!names[@]}"; do
        # Warmed up by a run of its own: h2load's --warm-up-time would load the proxy for a
        # second more than the requests it counts (cpu 0's time is taken around the whole run).
        pin 1 h2load -t1 -c"$CONNS" -m"$STREAMS" -D 1 -H "Authorization: Bearer $token" "${urls[$i]}" >/dev/null 2>&1
        measure "${names[$i]}" h2load -t1 -c"$CONNS" -m"$STREAMS" -D "$DURATION" \
            -H "Authorization: Bearer $token" "${urls[$i]}"
    done
    measure gateway-h1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Authorization: Bearer $token" http://127.0.0.1:18190/api/v3/items/42
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
echo "| target | µs of cpu 0 per request (median of $REPS) | vs nginx-h2-proxy |"
echo "|---|---|---|"
base=$(echo "${cost[nginx-h2-proxy]}" | median)
for name in "${names[@]}" gateway-h1; do
    m=$(echo "${cost[$name]}" | median)
    echo "| $name | $(( m / 10 )).$(( m % 10 )) | $(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }')× |"
done
