import Foundation
import XCTest

/// Regression tests for the smuggling and pool-desynchronisation holes an attacker's look found:
/// each drives the real binary against a real keep-alive upstream that parses every request it
/// gets, so a request the gateway did not check would show up in `upstream.targets`.
final class FramingIntegrityTests: XCTestCase {
    var gw: GatewayHarness!
    var upstream: RecordingUpstream!

    private func start(settings: String = "", answer: (@Sendable (RecordingUpstream.Request) -> RecordingUpstream.Answer)? = nil) throws {
        upstream = try answer.map { try RecordingUpstream(answer: $0) } ?? RecordingUpstream()
        gw = try GatewayHarness(settings: settings, routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "http://127.0.0.1:\(upstream.port)"
            auth = "required"

            [[route]]
            prefix = "/open/"
            upstream = "http://127.0.0.1:\(upstream.port)"
            auth = "none"
            """, startUpstream: false)
    }

    override func tearDown() {
        gw = nil
        upstream = nil
    }

    /// A request the upstream would read as a second one if the body crossed unframed.
    private let smuggled = "GET /open/smuggled HTTP/1.1\r\nHost: up\r\nX-Forwarded-User: root\r\n\r\n"

    // MARK: upgrade with a body

    func testUpgradeRequestWithABodyIsRefusedAndNothingReachesTheUpstream() throws {
        try start()
        for framing in ["Content-Length: \(smuggled.utf8.count)\r\n\r\n\(smuggled)",
                        "Transfer-Encoding: chunked\r\n\r\n\(String(smuggled.utf8.count, radix: 16))\r\n\(smuggled)\r\n0\r\n\r\n"] {
            let c = try gw.connect()
            try c.send("GET /open/ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" + framing)
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 400)
            XCTAssertTrue(c.peerClosed())
        }
        // A well-framed request afterwards reaches it, so the upstream was reachable all along.
        XCTAssertEqual(try gw.get("/open/after").status, 200)
        XCTAssertEqual(upstream.targets, ["/open/after"])
    }

    func testBytesAfterAnUpgradeTheUpstreamDeclinedAreParsedAndCheckedAsRequests() throws {
        try start()
        let c = try gw.connect()
        // The upgrade carries a token; the bytes sent right behind it carry none.
        try c.send("GET /api/v3/ws HTTP/1.1\r\nHost: gw\r\n\(gw.bearer)Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                   + "GET /api/v3/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n")
        let declined = try c.readResponse()
        XCTAssertEqual(declined.status, 200, "the upstream answered the GET without switching")
        let second = try c.readResponse()
        XCTAssertEqual(second.status, 401, "the bytes behind the upgrade are a request of their own, checked")
        XCTAssertEqual(upstream.targets, ["/api/v3/ws"])
    }

    // MARK: heads that do not fit

    /// A chunked request whose head leaves no room for its rewritten framing line (a long Host,
    /// copied into X-Forwarded-Host) is refused with 431; one that fits is forwarded whole.
    /// Either way the upstream never reads its chunks as a request.
    func testChunkedRequestWhoseRewrittenHeadDoesNotFitIsRefusedNotSentWithoutItsFraming() throws {
        try start(settings: "[limits]\nheader_bytes = 65536\nrequest_line = 8192")
        var refused = 0, forwarded = 0
        for hostLength in stride(from: 32_400, through: 32_800, by: 8) {
            let host = String(repeating: "h", count: hostLength)
            let c = try gw.connect()
            try c.send("POST /open/chunked HTTP/1.1\r\nHost: \(host)\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + "\(String(smuggled.utf8.count, radix: 16))\r\n\(smuggled)\r\n0\r\n\r\n")
            let r = try c.readResponse()
            switch r.status {
            case 431: refused += 1
            case 200: forwarded += 1
            default: XCTFail("host of \(hostLength) bytes: \(r.status)")
            }
        }
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(forwarded, 0)
        XCTAssertTrue(upstream.waitFor { $0.requests.count >= forwarded })
        XCTAssertEqual(upstream.requests.count, forwarded)
        XCTAssertFalse(upstream.targets.contains("/open/smuggled"))
        for request in upstream.requests { XCTAssertEqual(request.body, Array(smuggled.utf8), "the body arrived as a body") }
    }

    /// Upstream answer heads near the buffer's size: each reaches the client whole, framing
    /// lines included, or is replaced by 502; never a head with lines missing.
    func testAnswerHeadThatCannotBeWrittenWholeIsA502() throws {
        try start(settings: "[limits]\nheader_bytes = 65536\nrequest_line = 8192") { request in
            let size = Int(request.target.split(separator: "/").last ?? "") ?? 100
            // 90 short `a:b` fields (each grows by one byte on the way) and one long padding field.
            let fields = (0..<90).map { "a\($0):b\r\n" }.joined()
            let fixed = "HTTP/1.1 200 OK\r\n" + fields + "X-Pad: \r\nContent-Length: 4\r\n\r\n"
            let pad = String(repeating: "p", count: max(0, size - fixed.utf8.count))
            return RecordingUpstream.Answer("HTTP/1.1 200 OK\r\n" + fields + "X-Pad: \(pad)\r\nContent-Length: 4\r\n\r\nbody")
        }
        var whole = 0, badGateway = 0
        for size in stride(from: 65_200, through: 65_530, by: 6) {
            let c = try gw.connect()
            // HTTP/1.0 with keep-alive: the answer must carry its Connection field.
            try c.send("GET /open/\(size) HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\n\r\n")
            let r = try c.readResponse()
            if r.status == 502 {
                badGateway += 1
            } else {
                XCTAssertEqual(r.status, 200, "size \(size)")
                XCTAssertEqual(r.text, "body", "size \(size)")
                XCTAssertEqual(r.header("connection"), "keep-alive", "size \(size)")
                XCTAssertEqual(r.headers.filter { $0.0.hasPrefix("a") }.count, 90, "size \(size)")
                whole += 1
            }
        }
        XCTAssertGreaterThan(whole, 0)
        XCTAssertGreaterThan(badGateway, 0)
    }

    // MARK: early answers

    /// The upstream answers before the body was sent; the body, which looks like a request, is
    /// read and dropped, and the client's next request on the connection is served as usual.
    func testBodyLeftAfterAnEarlyAnswerIsDroppedNotParsedAsARequest() throws {
        try start { request in
            request.target == "/open/early" ? RecordingUpstream.Answer("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno", beforeBody: true)
                                            : .ok("seen \(request.target)")
        }
        let bodies = [("Content-Length: \(smuggled.utf8.count)\r\n", smuggled),
                      ("Transfer-Encoding: chunked\r\n", "\(String(smuggled.utf8.count, radix: 16))\r\n\(smuggled)\r\n0\r\n\r\n")]
        for (framing, body) in bodies {
            let c = try gw.connect()
            try c.send("POST /open/early HTTP/1.1\r\nHost: gw\r\n\(framing)\r\n")
            let early = try c.readResponse()
            XCTAssertEqual(early.status, 403)
            try c.send(body + "GET /open/next HTTP/1.1\r\nHost: gw\r\n\r\n")
            let next = try c.readResponse()
            XCTAssertEqual(next.status, 200, framing)
            XCTAssertEqual(next.text, "seen /open/next", framing)
        }
        XCTAssertFalse(upstream.targets.contains("/open/smuggled"), "\(upstream.targets)")
    }

    // MARK: stray bytes

    /// After an answer without a body (HEAD, 204, 304) an upstream may send bytes no request
    /// asked for, even after the next request went out on the same connection; so that
    /// connection is not used again, and they never become another request's answer.
    func testStrayBytesAfterABodilessAnswerNeverAnswerTheNextRequest() throws {
        let forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
        try start { request in
            switch request.target {
            case "/open/head": return RecordingUpstream.Answer("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", stray: forged, strayAfterMs: 300)
            case "/open/204": return RecordingUpstream.Answer("HTTP/1.1 204 No Content\r\n\r\n", stray: forged, strayAfterMs: 300)
            case "/open/304": return RecordingUpstream.Answer("HTTP/1.1 304 Not Modified\r\n\r\n", stray: forged, strayAfterMs: 300)
            default: return .ok("real")
            }
        }
        for (method, path) in [("HEAD", "/open/head"), ("GET", "/open/204"), ("GET", "/open/304")] {
            let strays = upstream.strayCount
            let c = try gw.connect()
            try c.send("\(method) \(path) HTTP/1.1\r\nHost: gw\r\n\r\n")
            _ = try c.readResponse(headRequest: true)
            // At once, before the stray bytes come: a reused connection would carry this request.
            try c.send("GET /open/real HTTP/1.1\r\nHost: gw\r\n\r\n")
            XCTAssertEqual(try c.readResponse().text, "real", "after \(method) \(path)")
            XCTAssertTrue(upstream.waitFor { $0.strayCount > strays }, "the upstream sent its stray bytes")
            for _ in 0..<3 { XCTAssertEqual(try gw.get("/open/real").text, "real", "after \(method) \(path)") }
        }
    }

    /// An idle pooled connection that turns readable is closed, and the next request goes on a
    /// fresh connection; the stray answer is never delivered.
    func testStrayBytesOnAnIdlePooledConnectionCloseIt() throws {
        let forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
        try start { request in
            request.target == "/open/stray" ? RecordingUpstream.Answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", stray: forged)
                                            : .ok("real")
        }
        XCTAssertEqual(try gw.get("/open/stray").text, "ok")
        XCTAssertTrue(upstream.waitFor { $0.strayCount == 1 })
        for _ in 0..<5 { XCTAssertEqual(try gw.get("/open/real").text, "real") }
        XCTAssertEqual(Set(upstream.requests.map(\.connection)).count, 2, "the connection with stray bytes was not used again")
    }

    func testPipelinedRequestsEachGetTheirOwnAnswer() throws {
        try start()
        let c = try gw.connect()
        let paths = (0..<20).map { "/open/p\($0)" }
        try c.send(paths.map { "GET \($0) HTTP/1.1\r\nHost: gw\r\n\r\n" }.joined())
        for path in paths { XCTAssertEqual(try c.readResponse().text, "seen \(path)") }
    }

    // MARK: heads against the buffer

    func testHeadLimitAboveTheConnectionBufferIsRefusedAtLoad() throws {
        let dir = try TempDir()
        let conf = try dir.write("gateway.conf", "[limits]\nheader_bytes = 70000\n")
        let r = try GatewayBinary.run(["check-config", "--config", conf])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("limits.header_bytes must be between 256 and 65536"), r.stderr)
    }

    func testHeadLargerThanTheLimitIsRefusedAtOnceWithoutHoldingTheWorker() throws {
        try start(settings: "header_timeout = \"30s\"\n[limits]\nheader_bytes = 65536\nrequest_line = 8192")
        let c = try gw.connect()
        let started = Date()
        try c.send("GET /open/big HTTP/1.1\r\nHost: gw\r\nX-Big: " + String(repeating: "b", count: 70_000) + "\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 431)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "answered long before the 30 s header timeout")
        XCTAssertEqual(try gw.get("/open/after").text, "seen /open/after", "the worker serves others")
        XCTAssertEqual(upstream.targets, ["/open/after"])
    }
}
