import Foundation
import Glibc
import TokenCore
import XCTest

/// The bearer check on protected routes, end to end against the real binary.
final class ProxyAuthTests: XCTestCase {
    var gw: GatewayHarness!

    override func setUpWithError() throws { gw = try GatewayHarness() }
    override func tearDown() { gw = nil }

    func testValidAccessTokenIsForwardedWithTheVerifiedIdentity() throws {
        let r = try gw.get("/api/v3/items/42?x=1", headers: "Authorization: Bearer \(gw.token(sub: "alice"))\r\n")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json?["path"] as? String, "/api/v3/items/42?x=1")
        XCTAssertEqual(r.json?["user"] as? String, "alice")
        XCTAssertEqual(r.upstreamHeader("authorization"), [], "the token is not passed upstream")
        XCTAssertEqual(r.upstreamHeader("x-forwarded-for"), ["127.0.0.1"])
        XCTAssertEqual(r.upstreamHeader("x-forwarded-proto"), ["http"])
        XCTAssertEqual(r.upstreamHeader("x-forwarded-host"), ["gw.test"])
        XCTAssertEqual(r.upstreamHeader("x-request-id").count, 1)
    }

    func testTokenOfTheVerifyKeyStillPasses() throws {
        // Sign with the gateway's "verify" key: a local ring where that same secret is active.
        let ring = try KeyRing(keys: [Key(kid: "old", algorithm: .hs256, material: gw.ring.keys[0].material, state: .active)])
        let token = try TokenIssuer(settings: IssuerSettings()).issue(subject: "bob", use: .access, ring: ring, now: Int64(Date().timeIntervalSince1970)).token
        let r = try gw.get("/api/v3/x", headers: "Authorization: Bearer \(token)\r\n")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json?["user"] as? String, "bob")
    }

    func assertUnauthorized(_ headers: String, _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try gw.get("/api/v3/secret", headers: headers)
        XCTAssertEqual(r.status, 401, why, file: file, line: line)
        XCTAssertEqual(r.header("www-authenticate"), "Bearer error=\"invalid_token\"", why, file: file, line: line)
        XCTAssertEqual(r.header("content-type"), "application/json", why, file: file, line: line)
        XCTAssertEqual(r.json?["code"] as? Int, 401, why, file: file, line: line)
        XCTAssertEqual(r.json?["message"] as? String, "Unauthorized", why, file: file, line: line)
        XCTAssertEqual(r.json?["details"] as? [String], ["Missing or invalid JWT token"], why, file: file, line: line)
    }

    func testEveryBadTokenGets401AndNothingIsForwarded() throws {
        let spy = try SpyUpstream()
        gw = try GatewayHarness(spy: spy)
        let now = Int64(Date().timeIntervalSince1970)
        let valid = gw.token()
        let foreign = try TokenIssuer(settings: IssuerSettings()).issue(subject: "x", use: .access,
                                                                        ring: try KeyRing.single(secret: Crypto.randomBytes(32), kid: "cur"), now: now).token
        let cases: [(String, String)] = [
            ("", "no Authorization"),
            ("Authorization: Basic YWxpY2U6cHc=\r\n", "Basic scheme"),
            ("Authorization: Bearer\r\n", "no token"),
            ("Authorization: Bearer \(gw.token(now: now - 3600, lifetime: 600))\r\n", "expired"),
            ("Authorization: Bearer \(gw.token(use: .refresh))\r\n", "refresh token as access"),
            ("Authorization: Bearer \(foreign)\r\n", "signed by another secret"),
            ("Authorization: Bearer \(valid.dropLast(2))AA\r\n", "tampered signature"),
            ("Authorization: Bearer \(valid)\r\nAuthorization: Bearer \(valid)\r\n", "two Authorization fields"),
            ("Authorization: Bearer abc.def\r\n", "garbage"),
            ("Authorization: Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIiwia2lkIjoiY3VyIn0.eyJzdWIiOiJ4In0.\r\n", "alg none"),
            ("Authorization: Bearer \(valid) x\r\n", "trailing junk"),
        ]
        for (headers, why) in cases { try assertUnauthorized(headers, why) }
        XCTAssertEqual(spy.received(), [], "no request reached the upstream")
    }

    func testBearerSchemeIsCaseInsensitive() throws {
        let r = try gw.get("/api/v3/x", headers: "Authorization: bEaReR \(gw.token())\r\n")
        XCTAssertEqual(r.status, 200)
    }

    func testUnauthorizedKeepsTheConnectionForTheNextRequest() throws {
        let c = try gw.connect()
        try c.send("GET /api/v3/a HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 401)
        try c.send("GET /api/v3/b HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json?["path"] as? String, "/api/v3/b")
    }

    func testOpenRouteNeedsNoTokenAndCarriesNoIdentity() throws {
        let r = try gw.get("/open/thing")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.upstreamHeader("x-forwarded-user"), [])
    }

    func testUnknownPathIs404JSONAndNotForwarded() throws {
        let r = try gw.get("/elsewhere", headers: gw.bearer)
        XCTAssertEqual(r.status, 404)
        XCTAssertEqual(r.json?["code"] as? Int, 404)
        XCTAssertEqual(r.header("content-type"), "application/json")
    }

    func testHealthzAnswersWithoutAToken() throws {
        let r = try gw.get("/healthz")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json?["status"] as? String, "ok")
    }

    func testAccessLogNamesTheFailedRuleButNeverTheToken() throws {
        let expired = gw.token(now: Int64(Date().timeIntervalSince1970) - 3600, lifetime: 60)
        _ = try gw.get("/api/v3/logged", headers: "Authorization: Bearer \(expired)\r\n")
        _ = try gw.get("/api/v3/fine", headers: "Authorization: Bearer \(gw.token(sub: "carol"))\r\n")
        XCTAssertTrue(waitUntil(seconds: 5) { gw.log.contains("GET /api/v3/fine 200") }, "the log is written by a background thread")
        let log = gw.log
        XCTAssertTrue(log.contains("GET /api/v3/logged 401"), log)
        XCTAssertTrue(log.contains("rule=expired"), log)
        XCTAssertTrue(log.contains("GET /api/v3/fine 200"), log)
        XCTAssertTrue(log.contains("user=carol"), log)
        XCTAssertFalse(log.contains(String(expired.prefix(20))), "no token in the log")
    }
}
