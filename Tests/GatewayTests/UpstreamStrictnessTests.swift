import Foundation
import XCTest

/// Upstream answers are parsed as strictly as requests: what cannot be framed safely is a 502,
/// and what the client gets is always well framed.
final class UpstreamStrictnessTests: XCTestCase {
    func gateway(for upstream: ScriptedUpstream) throws -> GatewayHarness {
        try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "http://127.0.0.1:\(upstream.port)"
            auth = "none"
            """, startUpstream: false)
    }

    func testAmbiguousOrBrokenUpstreamAnswersAre502() throws {
        for (answer, why) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "CL and TE"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello", "differing CLs"),
            ("HTTP/1.1 200 OK\r\nX-Bad : v\r\nContent-Length: 0\r\n\r\n", "space before colon"),
            ("HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 0\r\n\r\n", "obs-fold"),
            ("garbage\r\n\r\n", "no status line"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "bad status code"),
            ("", "closed without answering"),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "101 nobody asked for"),
        ] {
            let up = try ScriptedUpstream(response: answer)
            let gw = try gateway(for: up)
            let r = try gw.get("/api/v3/x")
            XCTAssertEqual(r.status, 502, why)
            XCTAssertEqual(r.json?["code"] as? Int, 502, why)
        }
    }

    func testInterimAnswersAreNotRelayedAndTheFinalOneIs() throws {
        let up = try ScriptedUpstream(response: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let gw = try gateway(for: up)
        let c = try gw.connect()
        try c.send("GET /api/v3/x HTTP/1.1\r\nHost: h\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.text, "ok")
    }

    func testNoBodyAfter204AndHopByHopFieldsOfTheAnswerAreDropped() throws {
        let up = try ScriptedUpstream(response: "HTTP/1.1 204 No Content\r\nConnection: X-Up-Hop, keep-alive\r\nX-Up-Hop: 1\r\nKeep-Alive: timeout=3\r\nX-Kept: 1\r\n\r\n", closeAfter: false)
        let gw = try gateway(for: up)
        let c = try gw.connect()
        try c.send("GET /api/v3/x HTTP/1.1\r\nHost: h\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 204)
        XCTAssertNil(r.header("x-up-hop"))
        XCTAssertNil(r.header("keep-alive"))
        XCTAssertEqual(r.header("x-kept"), "1")
        // The connection is in step for the next request.
        try c.send("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 200)
    }

    func testAnswerCutShortByTheUpstreamEndsTheClientConnection() throws {
        let up = try ScriptedUpstream(response: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part")
        let gw = try gateway(for: up)
        let c = try gw.connect()
        try c.send("GET /api/v3/x HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertThrowsError(try c.readResponse(), "the client must see the answer is incomplete")
    }

    func testCloseDelimitedAnswerIsRelayedChunkedToAnHTTP11Client() throws {
        let up = try ScriptedUpstream(response: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close-body")
        let gw = try gateway(for: up)
        let c = try gw.connect()
        try c.send("GET /api/v3/x HTTP/1.1\r\nHost: h\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.header("transfer-encoding"), "chunked")
        XCTAssertEqual(r.text, "until-close-body")
        try c.send("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 200, "and the client connection stays usable")
    }
}
