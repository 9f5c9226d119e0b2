import Foundation
import Glibc
import TokenCore
import XCTest

/// Expiry enforced on long-lived streams: a tunnel or a streaming answer ends with its token.
final class StreamExpiryTests: XCTestCase {
    func openTunnel(_ gw: GatewayHarness, token: String) throws -> RawClient {
        let c = try gw.connect()
        try c.send("GET /api/v3/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer \(token)\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 101)
        try c.send("ping")
        var buf = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(recv(c.fd, &buf, 16, 0), 4, "the tunnel echoes")
        return c
    }

    func testATunnelEndsWhenItsTokenExpires() throws {
        let gw = try GatewayHarness()
        let now = Int64(Date().timeIntervalSince1970)
        let c = try openTunnel(gw, token: gw.token(sub: "w", now: now - 598, lifetime: 600))  // 2 s left
        c.setTimeout(6)
        let start = Date()
        XCTAssertTrue(c.peerClosed())
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertTrue(waitUntil(seconds: 5) { gw.log.contains("its token expired") }, gw.log)  // written by a background thread
    }

    func testATunnelEndsWhenItsUserIsRevoked() throws {
        let gw = try GatewayHarness()
        let c = try openTunnel(gw, token: gw.token(sub: "mallory"))
        XCTAssertEqual(try GatewayBinary.run(["revoke", "--config", gw.configPath, "--user", "mallory"]).status, 0)
        c.setTimeout(4)
        XCTAssertTrue(c.peerClosed(), "closed within the next sweep")
        XCTAssertTrue(waitUntil(seconds: 5) { gw.log.contains("was revoked") }, gw.log)
    }

    func testAStreamingAnswerEndsWhenItsTokenExpires() throws {
        let gw = try GatewayHarness()
        let now = Int64(Date().timeIntervalSince1970)
        let c = try gw.connect()
        try c.send("GET /api/v3/bytes/400000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(gw.token(now: now - 598, lifetime: 600))\r\n\r\n")
        // Read slowly, so the answer is still streaming when the token expires.
        var got = 0
        var buf = [UInt8](repeating: 0, count: 16_384)
        c.setTimeout(8)
        let start = Date()
        while true {
            let n = recv(c.fd, &buf, buf.count, 0)
            if n <= 0 { break }
            got += n
            usleep(2_000)
        }
        XCTAssertLessThan(got, 400_000_000, "cut before the end")
        XCTAssertLessThan(Date().timeIntervalSince(start), 7)
        XCTAssertTrue(waitUntil(seconds: 5) { gw.log.contains("closed=token_expired") }, gw.log)
    }
}
