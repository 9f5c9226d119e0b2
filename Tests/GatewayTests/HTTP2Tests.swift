import Foundation
import TokenCore
import XCTest

/// HTTP/2 through the real binary with real clients (python `h2`, curl): each stream is a
/// request exactly as an HTTP/1.1 one is — the same routes, bearer check, own endpoints, limits
/// and log — and every stream error leaves the connection and the other streams alone.
final class HTTP2Tests: XCTestCase {
    private var gw: GatewayHarness!

    override func tearDown() {
        gw = nil
    }

    private func bearer(_ sub: String = "alice") -> (String, String) {
        ("authorization", "Bearer " + gw.token(sub: sub))
    }

    // MARK: the same contract as HTTP/1.1

    func testPriorKnowledgeStreamsGetTheSameAnswersAsHTTP11() throws {
        gw = try GatewayHarness()
        let out = try H2Client.run(port: gw.port, requests: [
            H2Client.request("/healthz"),
            H2Client.request("/api/v3/hello", headers: [bearer()]),
            H2Client.request("/api/v3/hello"),
            H2Client.request("/nowhere"),
            H2Client.request("HEAD", "/api/v3/bytes/100", headers: [bearer()]),
        ])
        let s = out.ordered
        XCTAssertEqual(s.count, 5)
        XCTAssertEqual(s[0].status, 200)
        XCTAssertEqual(s[0].text, #"{"status":"ok"}"#)
        XCTAssertEqual(s[1].status, 200, s[1].text ?? "")
        XCTAssertEqual(s[1].json?["user"] as? String, "alice", "the upstream saw the vouched identity")
        XCTAssertEqual(s[2].status, 401)
        XCTAssertEqual(s[2].header("www-authenticate"), #"Bearer error="invalid_token""#)
        XCTAssertEqual(s[2].json?["code"] as? Int, 401)
        XCTAssertEqual(s[3].status, 404)
        XCTAssertEqual(s[4].status, 200)
        XCTAssertEqual(s[4].header("content-length"), "100", "HEAD keeps the length of the answer it describes")
        XCTAssertEqual(s[4].bodyLength, 0, "HEAD carries no DATA")
        XCTAssertNil(out.goaway)
    }

    func testLoginRefreshAndLogoutWorkOverHTTP2() throws {
        let password = "pw-h2-\(UUID().uuidString.prefix(8))"
        gw = try GatewayHarness(password: password)
        let body = #"{"username":"admin","password":"\#(password)"}"#
        let login = try H2Client.run(port: gw.port, requests: [
            H2Client.request("POST", "/api/login", headers: [("content-type", "application/json")], body: body),
        ]).ordered[0]
        XCTAssertEqual(login.status, 200, login.text ?? "")
        let access = try XCTUnwrap(login.json?["access_token"] as? String)
        let refresh = try XCTUnwrap(login.json?["refresh_token"] as? String)
        // A body of unknown length (no content-length) is gathered whole for the endpoint too.
        let again = try H2Client.run(port: gw.port, requests: [
            H2Client.request("POST", "/api/login", headers: [("content-type", "application/json")], contentLength: false, body: body),
            H2Client.request("GET", "/api/login/refresh", headers: [("authorization", "Bearer \(refresh)")]),
            H2Client.request("GET", "/api/v3/hello", headers: [("authorization", "Bearer \(access)")]),
        ]).ordered
        XCTAssertEqual(again[0].status, 200, again[0].text ?? "")
        XCTAssertNotNil(again[1].json?["access_token"], again[1].text ?? "")
        XCTAssertEqual(again[2].status, 200)
        XCTAssertEqual(again[2].json?["user"] as? String, "admin")
    }

    func testHundredConcurrentStreamsOnOneConnectionOneBadTokenIsRefusedAlone() throws {
        gw = try GatewayHarness()
        var requests: [[String: Any]] = []
        for i in 0..<100 {
            let auth = i == 37 ? ("authorization", "Bearer not.a.token") : bearer("user\(i)")
            requests.append(H2Client.request("/api/v3/item/\(i)", headers: [auth]))
        }
        let out = try H2Client.run(port: gw.port, requests: requests)
        let s = out.ordered
        XCTAssertEqual(s.count, 100)
        for (i, stream) in s.enumerated() {
            if i == 37 {
                XCTAssertEqual(stream.status, 401)
            } else {
                XCTAssertEqual(stream.status, 200, "stream \(i): \(stream.text ?? "")")
                XCTAssertEqual(stream.json?["user"] as? String, "user\(i)")
                XCTAssertEqual(stream.json?["path"] as? String, "/api/v3/item/\(i)")
            }
        }
        XCTAssertNil(out.goaway)
    }

    func testEightMiBUpAndDownArriveIntact() throws {
        gw = try GatewayHarness(settings: "[limits]\nbody = \"16MiB\"")
        let n = 8 << 20
        let out = try H2Client.run(port: gw.port, requests: [
            H2Client.request("POST", "/api/v3/up", headers: [bearer()], bodyLength: n),
            H2Client.request("POST", "/api/v3/up-unknown-length", headers: [bearer()], bodyLength: n, contentLength: false),
            H2Client.request("/api/v3/bytes/\(n)", headers: [bearer()]),
            H2Client.request("/api/v3/chunked/\(n)", headers: [bearer()]),
        ], timeout: 60)
        let s = out.ordered
        for up in s[0...1] {
            XCTAssertEqual(up.status, 200, up.text ?? "")
            XCTAssertEqual(up.json?["body_bytes"] as? Int, n)
            XCTAssertEqual(up.json?["body_sha256"] as? String, up.sentSHA256, "the upstream got every byte in order")
        }
        let expected = try sha256OfPattern(n)
        XCTAssertEqual(s[2].header("content-length"), "\(n)")
        XCTAssertNil(s[3].header("content-length"), "a chunked answer has no length in advance")
        XCTAssertNil(s[3].header("transfer-encoding"), "no HTTP/1.1 framing field on HTTP/2")
        for down in s[2...3] {
            XCTAssertEqual(down.status, 200)
            XCTAssertEqual(down.bodyLength, n)
            XCTAssertEqual(down.bodySHA256, expected)
            XCTAssertTrue(down.ended, "END_STREAM ends the body")
        }
    }

    /// The demo upstream's pattern bytes, hashed by the gateway's HTTP/1.1 path for comparison.
    private func sha256OfPattern(_ n: Int) throws -> String {
        let c = try gw.connect()
        try c.send("GET /open/bytes/\(n) HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        return Crypto.hex(Crypto.sha256(r.body))
    }

    // MARK: what is refused, and that nothing is forwarded

    func testMalformedRequestsResetOnlyTheirStreamAndReachNoUpstream() throws {
        let spy = try SpyUpstream()
        gw = try GatewayHarness(spy: spy, auth: "none")
        let authority = "127.0.0.1:\(gw.port)"
        func fields(_ extra: [(String, String)], method: String = "GET") -> [(String, String)] {
            [(":method", method), (":scheme", "http"), (":authority", authority), (":path", "/api/v3/x")] + extra
        }
        let bad: [(String, [(String, String)])] = [
            ("an upper-case field name", fields([("X-Upper", "1")])),
            ("a connection-specific field", fields([("connection", "keep-alive")])),
            ("te other than trailers", fields([("te", "gzip")])),
            ("host that disagrees with :authority", fields([("host", "elsewhere.example")])),
            ("a pseudo-field after a regular one", [(":method", "GET"), (":scheme", "http"), ("x-a", "1"), (":path", "/api/v3/x")]),
            ("no :path", [(":method", "GET"), (":scheme", "http"), (":authority", authority)]),
            ("content-length the DATA does not match", fields([("content-length", "5")], method: "POST")),
        ]
        var requests = bad.map { H2Client.raw($0.1) }
        // The last bad one sends no DATA but says 5 bytes follow: END_STREAM on HEADERS.
        requests.append(H2Client.request("/healthz"))
        let out = try H2Client.run(port: gw.port, requests: requests)
        let s = out.ordered
        for (i, (why, _)) in bad.enumerated() {
            XCTAssertEqual(s[i].reset, H2Client.protocolError, "\(why): RST_STREAM PROTOCOL_ERROR, got status \(s[i].status ?? 0)")
        }
        XCTAssertEqual(s.last?.status, 200, "the connection and its other streams go on")
        XCTAssertNil(out.goaway)
        XCTAssertEqual(spy.received(), [], "nothing reached the upstream")
    }

    func testHeaderListOverTheLimitIs431AndBodyOverTheRouteLimitIs413() throws {
        gw = try GatewayHarness(settings: "[limits]\nrequest_line = 2048\nheader_bytes = 4096\nbody = 1000")
        let out = try H2Client.run(port: gw.port, requests: [
            H2Client.request("/api/v3/x", headers: [bearer(), ("x-big", String(repeating: "a", count: 5000))]),
            H2Client.request("POST", "/api/v3/x", headers: [bearer()], bodyLength: 5000),
            H2Client.request("POST", "/api/v3/x", headers: [bearer()], bodyLength: 5000, contentLength: false),
            H2Client.request("/healthz"),
        ])
        let s = out.ordered
        XCTAssertEqual(s[0].status, 431)
        XCTAssertEqual(s[1].status, 413, "announced over the limit")
        XCTAssertEqual(s[2].status, 413, "found over the limit while it streams")
        XCTAssertEqual(s[3].status, 200)
    }

    // MARK: negotiation

    func testHTTPSOffersH2ByALPNAndHTTP11StillWorks() throws {
        gw = try GatewayHarness(tls: true)
        let out = try H2Client.run(port: gw.tlsPort, tls: true, requests: [H2Client.request("/api/v3/hello", headers: [bearer()])])
        XCTAssertEqual(out.alpn, "h2")
        let s = out.ordered[0]
        XCTAssertEqual(s.status, 200)
        XCTAssertTrue(s.text?.contains(#"["X-Forwarded-Proto","https"]"#) ?? false, s.text ?? "")
        let http11 = try H2Client.run(port: gw.tlsPort, tls: true, alpn: ["http/1.1"])
        XCTAssertEqual(http11.alpn, "http/1.1")
    }

    func testWithHTTP2OffThePrefaceIsABadHTTP11Request() throws {
        gw = try GatewayHarness(settings: "http2 = false")
        let c = try gw.connect()
        try c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertTrue([400, 505].contains(r.status), "\(r.status)")
    }

    func testCurlSpeaksH2cWithPriorKnowledge() throws {
        gw = try GatewayHarness()
        let token = gw.token(sub: "carol")
        let r = try GatewayBinary.runProgram(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-s", "--http2-prior-knowledge", "-H", "Authorization: Bearer \(token)", "-w", "\n%{http_version} %{http_code}",
            "http://127.0.0.1:\(gw.port)/api/v3/from-curl",
        ])
        XCTAssertTrue(r.stdout.hasSuffix("\n2 200"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains(#""user":"carol""#), r.stdout)
    }

    func testCurlNegotiatesH2OverHTTPSByALPN() throws {
        gw = try GatewayHarness(tls: true)
        let r = try GatewayBinary.runProgram(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-s", "--http2", "--cacert", gw.certPath, "--resolve", "localhost:\(gw.tlsPort):127.0.0.1",
            "-H", "Authorization: Bearer \(gw.token(sub: "dave"))", "-w", "\n%{http_version} %{http_code}",
            "https://localhost:\(gw.tlsPort)/api/v3/from-curl",
        ])
        XCTAssertTrue(r.stdout.hasSuffix("\n2 200"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains(#""user":"dave""#), r.stdout)
    }

    func testHttpxLogsInAndCallsTheAPIOverHTTP2WithTLS() throws {
        let password = "pw-httpx-\(UUID().uuidString.prefix(8))"
        gw = try GatewayHarness(password: password, tls: true)
        // python's httpx with http2=True (Debian's python3-httpx and python3-h2), verifying the
        // gateway's certificate: the login API, then the API with the token it gave.
        let script = """
            import json, sys, httpx
            port, cert, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            with httpx.Client(http2=True, verify=cert, base_url="https://localhost:%d" % port) as c:
                login = c.post("/api/login", json={"username": "admin", "password": password})
                token = login.json()["access_token"]
                api = c.get("/api/v3/from-httpx", headers={"Authorization": "Bearer " + token})
                bad = c.get("/api/v3/from-httpx", headers={"Authorization": "Bearer x"})
                print(json.dumps([login.http_version, login.status_code, api.http_version, api.status_code,
                                  api.json().get("user"), bad.status_code]))
            """
        let r = try GatewayBinary.runProgram(H2Client.python, ["-c", script, "\(gw.tlsPort)", gw.certPath, password])
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), #"["HTTP/2", 200, "HTTP/2", 200, "admin", 401]"#,
                       r.stdout + r.stderr)
    }

    func testAStreamingAnswerEndsWhenItsTokenExpires() throws {
        gw = try GatewayHarness()
        let now = Int64(Date().timeIntervalSince1970)
        let token = gw.token(now: now - 598, lifetime: 600)  // 2 s left
        let started = Date()
        // Not read: the answer is still streaming (held back by flow control) when the token expires.
        let out = try H2Client.run(port: gw.port, requests: [
            H2Client.request("/api/v3/bytes/400000000", headers: [("authorization", "Bearer \(token)")], read: false),
        ], timeout: 10)
        let s = try XCTUnwrap(out.ordered.first)
        XCTAssertEqual(s.status, 200)
        XCTAssertEqual(s.reset, H2Client.cancel, "\(out.raw)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 7)
        XCTAssertTrue(waitUntil { gw.log.contains("closed=token_expired") && gw.log.contains("proto=HTTP/2") }, gw.log)
    }

    // MARK: WebSocket over a stream (RFC 8441)

    func testAWebSocketOverAStreamEchoesThroughTheUpstreamsUpgrade() throws {
        gw = try GatewayHarness()
        let out = try H2Client.run(port: gw.port, mode: "websocket",
                                   extra: ["headers": [["authorization", "Bearer \(gw.token(sub: "ws"))"]],
                                           "messages": ["ping", "second message", String(repeating: "x", count: 60_000)]])
        XCTAssertEqual(out.settings["8"], 1, "SETTINGS_ENABLE_CONNECT_PROTOCOL")
        XCTAssertEqual(out.ordered.first?.status, 200, "\(out.raw)")
        XCTAssertNil(out.ordered.first?.header("sec-websocket-accept"), "the 101's accept answers a key the client never sent")
        let echoed = out.raw["echoed"] as? [String] ?? []
        XCTAssertEqual(echoed.map(\.count), [4, 14, 60_000], "each message came back whole (the last in frames)")
        XCTAssertEqual(echoed.prefix(2), ["ping", "second message"])
        XCTAssertTrue(waitUntil { gw.log.contains("/api/v3/ws 200") && gw.log.contains("user=ws") }, gw.log)
    }

    func testAWebSocketWithoutATokenIsRefusedAndAnotherProtocolIsMalformed() throws {
        let spy = try SpyUpstream()
        gw = try GatewayHarness(spy: spy)
        let refused = try H2Client.run(port: gw.port, mode: "websocket", extra: ["messages": ["ping"]])
        XCTAssertEqual(refused.ordered.first?.status, 401)
        let authority = "127.0.0.1:\(gw.port)"
        let other = try H2Client.run(port: gw.port, requests: [H2Client.raw([
            (":method", "CONNECT"), (":protocol", "not-websocket"), (":scheme", "http"), (":path", "/api/v3/ws"),
            (":authority", authority), ("authorization", "Bearer \(gw.token())"),
        ])])
        XCTAssertEqual(other.ordered.first?.reset, H2Client.protocolError)
        XCTAssertEqual(spy.received(), [], "nothing reached the upstream")
    }

    func testAWebSocketOverAStreamEndsWhenItsTokenExpires() throws {
        gw = try GatewayHarness()
        let now = Int64(Date().timeIntervalSince1970)
        let out = try H2Client.run(port: gw.port, mode: "websocket",
                                   extra: ["headers": [["authorization", "Bearer \(gw.token(now: now - 598, lifetime: 600))"]],
                                           "messages": ["ping"], "hold": true], timeout: 8)
        XCTAssertEqual(out.raw["echoed"] as? [String], ["ping"])
        XCTAssertEqual(out.ordered.first?.reset, H2Client.cancel, "\(out.raw)")
        XCTAssertLessThan(out.raw["seconds"] as? Double ?? 99, 6)
        XCTAssertTrue(waitUntil { gw.log.contains("closed=token_expired") && gw.log.contains("HTTP/2 tunnel") }, gw.log)
    }

    // MARK: the log

    func testEachStreamGetsOneAccessLogLineSayingHTTP2() throws {
        gw = try GatewayHarness()
        let token = gw.token()
        _ = try H2Client.run(port: gw.port, requests: [
            H2Client.request("/api/v3/logged-1", headers: [("authorization", "Bearer \(token)")]),
            H2Client.request("/api/v3/logged-2"),
        ])
        XCTAssertTrue(waitUntil { gw.log.contains("/api/v3/logged-2 401") && gw.log.contains("/api/v3/logged-1 200") }, gw.log)
        let lines = gw.log.split(separator: "\n").filter { $0.contains("/api/v3/logged-") }
        XCTAssertEqual(lines.count, 2, gw.log)
        XCTAssertTrue(lines.allSatisfy { $0.contains("proto=HTTP/2") }, gw.log)
        XCTAssertTrue(lines.contains { $0.contains("/api/v3/logged-1 200") && $0.contains("user=alice") }, gw.log)
        XCTAssertFalse(gw.log.contains(token), "no token in the log")
    }
}
