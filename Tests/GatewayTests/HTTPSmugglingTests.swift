import Foundation
import XCTest

/// Strict HTTP/1.1 on the wire: every ambiguous or malformed request is refused with a clear
/// error and never reaches the upstream.
final class HTTPSmugglingTests: XCTestCase {
    var gw: GatewayHarness!
    var spy: SpyUpstream!

    override func setUpWithError() throws {
        spy = try SpyUpstream()
        gw = try GatewayHarness(spy: spy, auth: "none")
    }

    override func tearDown() {
        gw = nil
        spy = nil
    }

    func assertRefused(_ raw: String, status: Int = 400, _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try gw.connect()
        try c.send(raw)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, status, why, file: file, line: line)
        XCTAssertEqual(r.json?["code"] as? Int, status, why, file: file, line: line)
        XCTAssertEqual(r.header("connection"), "close", why, file: file, line: line)
        XCTAssertTrue(c.peerClosed(), "\(why): the connection is closed after the answer", file: file, line: line)
    }

    func testFramingAttacksAreRefusedAndNothingIsForwarded() throws {
        let cases: [(String, Int, String)] = [
            ("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "CL.TE"),
            ("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "TE.CL"),
            ("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "differing CLs"),
            ("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 400, "CL list"),
            ("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400, "signed CL"),
            ("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400, "hex CL"),
            ("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "TE other than chunked"),
            ("POST /api/v3/x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "TE in HTTP/1.0"),
            ("GET /api/v3/x HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400, "obs-fold"),
            ("GET /api/v3/x HTTP/1.1\r\nHost: a\r\nX-Space : v\r\n\r\n", 400, "space before colon"),
            ("GET /api/v3/x HTTP/1.1\r\nHost: a\r\nX(Bad): v\r\n\r\n", 400, "invalid name character"),
            ("GET /api/v3/x HTTP/1.1\r\nHost: a\r\nX-Nul: a\u{0}b\r\n\r\n", 400, "NUL in a value"),
            ("GET /api/v3/x HTTP/1.1\r\nHost: a\r\nX-LF: a\nb\r\n\r\n", 400, "bare LF"),
            ("GET /api/v3/x HTTP/1.1\r\n\r\n", 400, "no Host"),
            ("GET /api/v3/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Hosts"),
            ("GET /api/v3/x HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unknown version"),
            ("GET  /api/v3/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "double space in request line"),
            ("GET /api/v3/x\r\nHost: a\r\n\r\n", 400, "HTTP/0.9 style line"),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400, "CONNECT"),
        ]
        for (raw, status, why) in cases { try assertRefused(raw, status: status, why) }
        XCTAssertEqual(spy.received(), [], "nothing reached the upstream")
    }

    func testTargetsThatAreNotOriginFormAreRefusedAndNeverForwarded() throws {
        for target in ["http://evil/api/v3/x", "*", "/api/v3/x#frag", "api/v3/x"] {
            let r = try gw.request("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
            XCTAssertEqual(r.status, 400, target)
            XCTAssertEqual(r.json?["code"] as? Int, 400, target)
        }
        XCTAssertEqual(spy.received(), [])
    }

    func testMalformedChunkedBodyIsRefusedAndTheBadChunkNeverReachesTheUpstream() throws {
        for (body, why) in [("zz\r\nhello\r\n0\r\n\r\n", "bad chunk size"), ("5\r\nhelloXX0\r\n\r\n", "data without CRLF"),
                            ("-1\r\nx\r\n0\r\n\r\n", "negative size"), ("5 \r\nhello\r\n0\r\n\r\n", "space after size")] {
            try assertRefused("POST /api/v3/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body, why)
        }
        // The head was forwardable, so the upstream may have seen a connection or an incomplete
        // request; it never sees a complete one, nor the malformed chunk.
        for seen in spy.received() {
            XCTAssertFalse(seen.contains("zz\r\n") || seen.contains("helloXX") || seen.contains("-1\r\n"), seen)
            XCTAssertFalse(seen.hasSuffix("0\r\n\r\n"), "no complete request reached the upstream: \(seen)")
        }
    }

    func testPathTricksAreRefusedAndNothingIsForwarded() throws {
        for path in ["/api/v3/../admin", "/api/v3/./x", "/api/v3/%2e%2e/admin", "/api/v3/%2E%2e/x", "/api/v3/a%2fb",
                     "/api/v3/a%5cb", "/api/v3/a\\b", "/api/v3//x", "/api/v3/%252e%252e/x", "/api/v3/a/..", "/api/v3/%zz",
                     "/api/v3/..;/admin", "/api/v3/.;x/y", "/api/v3/a/..;", "/api/v3/%c0%ae%c0%ae/admin", "/api/v3/a%c0%afb",
                     "/api/v3/%e0%80%ae%e0%80%ae/x", "/api/v3/%C1%9C", "/api/v3/%f0%80%80%ae"] {
            let r = try gw.get(path)
            XCTAssertTrue(r.status == 400 || r.status == 404, "\(path): \(r.status)")
        }
        // Prefix matching is case-sensitive on the raw path.
        XCTAssertEqual(try gw.get("/API/v3/x").status, 404)
        XCTAssertEqual(spy.received(), [], "nothing reached the upstream")
    }

    func testARequestHiddenInTheBodyOfAnAnswerTheGatewayGivesItselfIsNeverRun() throws {
        let hidden = "GET /api/v3/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        for (method, path) in [("GET", "/api/login"), ("PUT", "/api"), ("POST", "/api/login/refresh"), ("DELETE", "/api/logout"),
                               ("POST", "/nowhere"), ("POST", "/api/v3/../x")] {
            let c = try gw.connect()
            try c.send("\(method) \(path) HTTP/1.1\r\nHost: a\r\nContent-Length: \(hidden.utf8.count)\r\n\r\n\(hidden)")
            let r = try c.readResponse()
            XCTAssertTrue([400, 401, 404, 405].contains(r.status), "\(method) \(path): \(r.status)")
            try c.send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            XCTAssertEqual(try c.readResponse().status, 200, "\(method) \(path): the next answer is the next request's")
        }
        XCTAssertEqual(spy.received(), [], "the hidden request never reached the upstream")
    }

    func testALogoutWithAChunkedBodyBesideItsBearerIsRefusedAndItsBodyNeverRun() throws {
        let hidden = "GET /api/v3/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        let c = try gw.connect()
        try c.send("POST /api/logout HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \(gw.token(use: .refresh))\r\n"
                   + "Transfer-Encoding: chunked\r\n\r\n\(String(hidden.utf8.count, radix: 16))\r\n\(hidden)\r\n0\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.header("connection"), "close")
        XCTAssertTrue(c.peerClosed())
        XCTAssertEqual(spy.received(), [], "the chunk never became a request")
    }

    /// The gateway's own paths are matched byte for byte, as routes are: other spellings are not
    /// its endpoints (here they match no route either).
    func testOwnEndpointsAreCaseSensitive() throws {
        XCTAssertEqual(try gw.get("/healthz").status, 200)
        XCTAssertEqual(try gw.get("/HEALTHZ").status, 404)
        XCTAssertEqual(try gw.get("/Readyz").status, 404)
        let body = #"{"username":"admin","password":"test-password-not-used"}"#
        XCTAssertEqual(try gw.request("POST /API/LOGIN HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                      + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)").status, 404)
        XCTAssertEqual(try gw.login(password: "test-password-not-used").status, 200)
        XCTAssertEqual(spy.received(), [])
    }

    /// An answer after which the connection ends says so, whoever asked for the close.
    func testAnAnswerThatEndsTheConnectionSaysConnectionClose() throws {
        for path in ["/healthz", "/nowhere", "/api/login"] {
            let c = try gw.connect()
            try c.send("GET \(path) HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            let r = try c.readResponse()
            XCTAssertEqual(r.header("connection"), "close", path)
            XCTAssertTrue(c.peerClosed(), path)
        }
    }

    /// HEAD to an endpoint of the gateway's own gets the head a GET would get and no body, so
    /// the next answer on the connection is read as the next answer.
    func testAHEADAnswerOfTheGatewaysOwnCarriesNoBody() throws {
        let c = try gw.connect()
        for path in ["/healthz", "/api", "/nowhere", "/api/login"] {
            try c.send("HEAD \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            let head = try c.readResponse(headRequest: true)
            XCTAssertNotNil(head.header("content-length"), path)
            XCTAssertTrue(head.body.isEmpty, path)
            try c.send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            let next = try c.readResponse()
            XCTAssertEqual(next.status, 200, path)
            XCTAssertEqual(next.text, #"{"status":"ok"}"#, path)
        }
    }

    func testOverlongRequestLineIs414AndTheClientReadsIt() throws {
        let c = try gw.connect()
        try c.send("GET /api/v3/" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 414)
        XCTAssertEqual(r.json?["code"] as? Int, 414)
    }

    func testOversizedHeaderSectionIs431() throws {
        var raw = "GET /api/v3/x HTTP/1.1\r\nHost: a\r\n"
        for i in 0..<101 { raw += "X-H\(i): v\r\n" }
        try assertRefused(raw + "\r\n", status: 431, "101 fields")
        try assertRefused("GET /api/v3/x HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "b", count: 33_000))\r\n\r\n", status: 431, "33 KB field")
    }

    func testLingeringCloseLetsAClientStillSendingReadTheError() throws {
        // The client keeps sending a large body after a refused head; it still gets the 431,
        // not a reset.
        let c = try gw.connect()
        var raw = "POST /api/v3/x HTTP/1.1\r\nHost: a\r\n"
        for i in 0..<101 { raw += "X-H\(i): v\r\n" }
        try c.send(raw + "Content-Length: 200000\r\n\r\n")
        try? c.send([UInt8](repeating: 0x41, count: 200_000))
        XCTAssertEqual(try c.readResponse().status, 431)
        XCTAssertEqual(spy.received(), [])
    }
}
