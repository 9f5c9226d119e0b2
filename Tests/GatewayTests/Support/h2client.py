#!/usr/bin/python3
"""An HTTP/2 client for the integration tests, on python's `h2` (Debian's python3-h2).

Reads a JSON spec on stdin, runs it on ONE connection (h2c with prior knowledge, or TLS with
ALPN h2), and prints what happened as JSON: per stream the status, headers, body length,
sha256 and (when short) text, or the RST_STREAM code; the GOAWAY code if one came.

Spec: {"port": N, "tls": false, "requests": [REQ...], "mode": "normal"|...}
REQ:  {"method", "path", "authority", "headers": [[name, value]...], "body_len": N,
       "content_length": bool, "raw": [[name, value]...] (the whole header list, unchecked),
       "read": bool (false: never read the answer body)}
"then_stay": N keeps the connection open after the answers, up to N seconds, until it is closed.
Modes beyond "normal" exercise the gateway's abuse limits:
  "idle": the preface and SETTINGS, then nothing (until closed: "seconds" it took);
  "rapid_reset": open and cancel streams `count` times; "continuation_flood": one HEADERS
  followed by endless CONTINUATION frames; "settings_flood"/"ping_flood": `count` frames
  without reading the acks.
"""
import hashlib
import json
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def pattern(n):
    block = bytes((i * 7 + 3) % 251 for i in range(65536))
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


def connect(spec):
    sock = socket.create_connection(("127.0.0.1", spec["port"]), timeout=spec.get("timeout", 20))
    if spec.get("tls"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(spec.get("alpn", ["h2"]))
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    return sock


def new_connection():
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                    validate_outbound_headers=False, normalize_outbound_headers=False,
                                    validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config=cfg)
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
        h2.settings.SettingCodes.ENABLE_PUSH: 0,
    })
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 24)
    return conn


def header_list(req, port):
    if "raw" in req:
        return [(k, v) for k, v in req["raw"]]
    hs = [(":method", req.get("method", "GET")), (":scheme", req.get("scheme", "http")),
          (":authority", req.get("authority", "127.0.0.1:%d" % port)), (":path", req["path"])]
    for k, v in req.get("headers", []):
        hs.append((k, v))
    n = req.get("body_len", 0)
    if n and req.get("content_length", True):
        hs.append(("content-length", str(n)))
    return hs


def normal(spec, sock, conn, result):
    port = spec["port"]
    streams = {}
    bodies = {}
    for req in spec["requests"]:
        sid = conn.get_next_available_stream_id()
        n = req.get("body_len", 0)
        body = req.get("body", "").encode() if "body" in req else pattern(n)
        conn.send_headers(sid, header_list(req, port), end_stream=not body and not req.get("open", False))
        streams[sid] = {"status": None, "headers": [], "len": 0, "sha": hashlib.sha256(), "text": b"",
                        "reset": None, "ended": False, "read": req.get("read", True), "sent_sha": hashlib.sha256(body).hexdigest()}
        if body:
            bodies[sid] = [body, 0]
    sock.sendall(conn.data_to_send())
    deadline = time.time() + spec.get("timeout", 20)
    while time.time() < deadline:
        # Send body bytes as the windows allow.
        for sid, (body, off) in list(bodies.items()):
            if streams[sid]["reset"] is not None:
                del bodies[sid]
                continue
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            while room > 0 and off < len(body):
                k = min(room, len(body) - off)
                conn.send_data(sid, body[off:off + k], end_stream=off + k == len(body))
                off += k
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            bodies[sid][1] = off
            if off >= len(body):
                del bodies[sid]
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        if all(s["ended"] or s["reset"] is not None for s in streams.values()):
            break
        if result.get("goaway") is not None and all(s["ended"] or s["reset"] is not None or sid > result["last_stream_id"]
                                                     for sid, s in streams.items()):
            break
        if not receive_once(sock, conn, streams, result):
            break
    out = conn.data_to_send()
    if out:
        try:
            sock.sendall(out)
        except OSError:
            pass
    result["streams"] = {str(sid): {"status": s["status"], "headers": s["headers"], "body_len": s["len"],
                                    "body_sha256": s["sha"].hexdigest(), "sent_sha256": s["sent_sha"],
                                    "text": s["text"].decode("utf-8", "replace") if s["len"] <= 8192 else None,
                                    "reset": s["reset"], "ended": s["ended"]} for sid, s in streams.items()}


def receive_once(sock, conn, streams, result):
    """One read, its events handled; False when the connection has ended or went quiet."""
    try:
        data = sock.recv(65536)
    except socket.timeout:
        return False
    if not data:
        result["eof"] = True
        return False
    for ev in conn.receive_data(data):
        handle(ev, conn, streams, result)
    return True


def handle(ev, conn, streams, result):
    if isinstance(ev, h2.events.ResponseReceived) or isinstance(ev, h2.events.InformationalResponseReceived):
        s = streams.get(ev.stream_id)
        if s is None:
            return
        hs = [(k, v) for k, v in ev.headers]
        if isinstance(ev, h2.events.InformationalResponseReceived):
            s.setdefault("interim", []).append(dict(hs).get(":status"))
            return
        s["status"] = int(dict(hs)[":status"])
        s["headers"] = hs
    elif isinstance(ev, h2.events.DataReceived):
        s = streams.get(ev.stream_id)
        if s is None:
            return
        if s["read"]:
            s["len"] += len(ev.data)
            s["sha"].update(ev.data)
            if s["len"] <= 8192 or s.get("keep_text"):
                s["text"] += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
    elif isinstance(ev, h2.events.StreamEnded):
        if ev.stream_id in streams:
            streams[ev.stream_id]["ended"] = True
    elif isinstance(ev, h2.events.StreamReset):
        if ev.stream_id in streams:
            streams[ev.stream_id]["reset"] = int(ev.error_code)
    elif isinstance(ev, h2.events.ConnectionTerminated):
        result["goaway"] = int(ev.error_code)
        result["last_stream_id"] = ev.last_stream_id
    elif isinstance(ev, h2.events.RemoteSettingsChanged):
        result.setdefault("settings", {}).update({str(int(k)): v.new_value for k, v in ev.changed_settings.items()})


def read_until_closed(sock, conn, result, seconds, past_goaway=False):
    """Reads (and drops) until the gateway closes the connection, or until its GOAWAY unless
    `past_goaway` (a GOAWAY that came is in result["goaway"])."""
    deadline = time.time() + seconds
    sock.settimeout(0.5)
    while time.time() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            result["eof"] = True
            return
        if not data:
            result["eof"] = True
            return
        try:
            for ev in conn.receive_data(data):
                handle(ev, conn, {}, result)
        except h2.exceptions.ProtocolError as e:
            result["client_error"] = str(e)
        if result.get("goaway") is not None and not past_goaway:
            return


def websocket(spec, sock, conn, result):
    """RFC 8441: extended CONNECT, then `messages` as DATA, each echoed back before the next;
    with "hold" the tunnel then stays open (reading) until the gateway ends it."""
    port = spec["port"]
    hs = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
          (":path", spec.get("path", "/api/v3/ws")), (":authority", "127.0.0.1:%d" % port),
          ("sec-websocket-version", "13")] + [(k, v) for k, v in spec.get("headers", [])]
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, hs, end_stream=False)
    sock.sendall(conn.data_to_send())
    streams = {sid: {"status": None, "headers": [], "len": 0, "sha": hashlib.sha256(), "text": b"",
                     "reset": None, "ended": False, "read": True, "sent_sha": "", "keep_text": True}}
    echoed = []
    pending = list(spec.get("messages", []))
    waiting = None
    started = time.time()
    deadline = started + spec.get("timeout", 10)
    while time.time() < deadline:
        s = streams[sid]
        if s["reset"] is not None or s["ended"] or result.get("goaway") is not None:
            break
        if waiting is not None and s["text"] == waiting:
            echoed.append(waiting.decode())
            waiting = None
            if not pending and not spec.get("hold"):
                conn.end_stream(sid)
                sock.sendall(conn.data_to_send())
        if s["status"] == 200 and waiting is None and pending:
            waiting = pending.pop(0).encode()
            s["text"] = b""
            s["len"] = 0
            for off in range(0, len(waiting), 16384):
                conn.send_data(sid, waiting[off:off + 16384], end_stream=False)
            sock.sendall(conn.data_to_send())
        if not receive_once(sock, conn, streams, result):
            break
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    s = streams[sid]
    result["seconds"] = time.time() - started
    result["echoed"] = echoed
    result["streams"] = {str(sid): {"status": s["status"], "headers": s["headers"], "body_len": s["len"],
                                    "body_sha256": "", "sent_sha256": "", "text": s["text"].decode("utf-8", "replace"),
                                    "reset": s["reset"], "ended": s["ended"]}}


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def abuse(spec, sock, conn, result):
    mode, count, port = spec["mode"], spec.get("count", 1000), spec["port"]
    base = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % port), (":path", spec.get("path", "/healthz"))]
    sent = 0
    try:
        if mode == "websocket":
            websocket(spec, sock, conn, result)
            return
        if mode == "idle":
            sock.sendall(conn.data_to_send())
            started = time.time()
            read_until_closed(sock, conn, result, spec.get("timeout", 10))
            result["seconds"] = time.time() - started
            return
        if mode == "rapid_reset":
            for _ in range(count):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, base, end_stream=True)
                conn.reset_stream(sid)
                sock.sendall(conn.data_to_send())
                sent += 1
        elif mode == "continuation_flood":
            sock.sendall(conn.data_to_send())
            enc = conn.encoder
            block = enc.encode(base)
            sock.sendall(frame(1, 0, 1, block))  # HEADERS without END_HEADERS
            filler = enc.encode([("x-filler", "a" * 100)])
            for _ in range(count):
                sock.sendall(frame(9, 0, 1, filler))
                sent += 1
        elif mode in ("settings_flood", "ping_flood"):
            # Frames a hundred to a write; the acks they ask for are never read.
            sock.sendall(conn.data_to_send())
            sock.settimeout(3)
            one = frame(4, 0, 0, b"") if mode == "settings_flood" else frame(6, 0, 0, b"\0" * 8)
            batch = one * 100
            while sent < count:
                sock.sendall(batch)
                sent += 100
    except OSError as e:
        result["send_error"] = str(e)
    result["sent"] = sent
    read_until_closed(sock, conn, result, spec.get("timeout", 10))


def main():
    spec = json.load(sys.stdin)
    result = {"goaway": None}
    sock = connect(spec)
    if spec.get("tls"):
        result["alpn"] = sock.selected_alpn_protocol()
        if result["alpn"] != "h2":
            print(json.dumps(result))
            return
    conn = new_connection()
    if spec.get("mode", "normal") == "normal":
        normal(spec, sock, conn, result)
        if spec.get("then_stay"):
            read_until_closed(sock, conn, result, spec["then_stay"], past_goaway=True)
    else:
        abuse(spec, sock, conn, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
