#!/usr/bin/env python3
"""Memory held by idle keep-alive connections: opens N connections to a running server, makes one
request on each (so it is a used keep-alive connection, not a fresh one), leaves them idle, and
reports the growth of the server's resident memory (VmRSS, and Pss when readable) per connection.

Usage: idle-connections.py PID PORT [N=10000] [PATH=/healthz]
Loopback only; bounded: N connections, then closes them all and exits.
"""
import resource, socket, sys, time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    path = sys.argv[4] if len(sys.argv) > 4 else "/healthz"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Warm up: one connection through the request path, so pools and buffers exist already.
    w = socket.create_connection(("127.0.0.1", port))
    w.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()); w.recv(65536); w.close()
    time.sleep(0.5)
    before = rss_kib(pid)
    conns = []
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        conns.append(s)
    for s in conns:
        s.settimeout(10)
        data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 200"), data[:40]
    time.sleep(1.0)
    after = rss_kib(pid)
    per = (after - before) * 1024 / n
    print(f"{n} idle keep-alive connections: RSS {before} KiB -> {after} KiB, {per:.0f} bytes per connection")
    for s in conns:
        s.close()

if __name__ == "__main__":
    main()
