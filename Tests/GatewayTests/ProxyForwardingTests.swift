import Foundation
import Glibc
import TokenCore
import XCTest

/// What crosses the gateway and how: header rewriting, bodies both ways, pipelining, upgrades.
final class ProxyForwardingTests: XCTestCase {
    var gw: GatewayHarness!

    override func setUpWithError() throws { gw = try GatewayHarness() }
    override func tearDown() { gw = nil }

    func testClientSuppliedIdentityIsDroppedInEverySpelling() throws {
        let spoof = ["X-Forwarded-User: mallory", "x-forwarded-user: mallory", "X_Forwarded_User: mallory",
                     "x-FORWARDED_user: mallory", "X-Forwarded_User: mallory"].joined(separator: "\r\n") + "\r\n"
        let r = try gw.get("/api/v3/me", headers: spoof + gw.bearer)
        XCTAssertEqual(r.status, 200)
        let identity = r.upstreamHeaders.filter { $0.0.lowercased().replacingOccurrences(of: "_", with: "-") == "x-forwarded-user" }
        XCTAssertEqual(identity.map(\.1), ["alice"], "only the verified identity reaches the upstream")
        // On an open route the spoofed field is dropped and none is added.
        let open = try gw.get("/open/me", headers: spoof)
        XCTAssertEqual(open.upstreamHeaders.filter { $0.0.lowercased().replacingOccurrences(of: "_", with: "-") == "x-forwarded-user" }.count, 0)
    }

    func testIdentityFieldsOtherProxiesSetAreStrippedOnEveryRouteAndThePeerIsSet() throws {
        let spoof = ["X-Remote-User: root", "Remote_User: root", "X-Auth-Request-User: root", "x-auth-request-email: root@x",
                     "X-Forwarded-Email: root@x", "X-Forwarded-Groups: admins", "X-Real-IP: 10.6.6.6",
                     "Forwarded: for=10.6.6.6;by=evil"].joined(separator: "\r\n") + "\r\n"
        for (path, headers) in [("/api/v3/me", spoof + gw.bearer), ("/open/me", spoof)] {
            let r = try gw.get(path, headers: headers)
            XCTAssertEqual(r.status, 200, path)
            XCTAssertFalse(r.upstreamHeaders.contains { $0.1.contains("root") || $0.1.contains("admins") || $0.1.contains("10.6.6.6") },
                           "\(path): \(r.upstreamHeaders)")
            XCTAssertEqual(r.upstreamHeader("x-real-ip"), ["127.0.0.1"], path)
            XCTAssertEqual(r.upstreamHeader("forwarded"), ["for=127.0.0.1;proto=http"], path)
        }
    }

    func testHopByHopFieldsAreStripped() throws {
        let r = try gw.get("/api/v3/h", headers: """
            Connection: keep-alive, X-Secret-Hop\r
            X-Secret-Hop: 1\r
            Keep-Alive: timeout=5\r
            TE: trailers\r
            Trailer: X-T\r
            Proxy-Authorization: Basic Zm9vOmJhcg==\r
            Proxy-Connection: keep-alive\r
            Upgrade: h2c\r
            X-Forwarded-Proto: https\r
            X-Forwarded-Host: evil\r
            X-Kept: yes\r
            \(gw.bearer)
            """)
        XCTAssertEqual(r.status, 200)
        let names = Set(r.upstreamHeaders.map { $0.0.lowercased() })
        for dropped in ["connection", "x-secret-hop", "keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection", "upgrade"] {
            XCTAssertFalse(names.contains(dropped), "\(dropped) must not reach the upstream")
        }
        XCTAssertEqual(r.upstreamHeader("x-kept"), ["yes"])
        XCTAssertEqual(r.upstreamHeader("x-forwarded-proto"), ["http"], "the gateway's view replaces the client's")
        XCTAssertEqual(r.upstreamHeader("x-forwarded-host"), ["gw.test"])
    }

    func testForwardedForAppendsThePeerAndRequestIDIsKept() throws {
        let r = try gw.get("/api/v3/f", headers: "X-Forwarded-For: 10.1.2.3\r\nX-Request-Id: abc-123\r\n" + gw.bearer)
        XCTAssertEqual(r.upstreamHeader("x-forwarded-for"), ["10.1.2.3, 127.0.0.1"])
        XCTAssertEqual(r.upstreamHeader("x-request-id"), ["abc-123"])
    }

    func testAuthorizationIsForwardedOnlyWhenTheRouteSaysSo() throws {
        gw = try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "UPSTREAM"
            forward_authorization = true
            """)
        let token = gw.token()
        let r = try gw.get("/api/v3/a", headers: "Authorization: Bearer \(token)\r\n")
        XCTAssertEqual(r.upstreamHeader("authorization"), ["Bearer \(token)"])
    }

    func testFiftyPipelinedRequestsAreAnsweredInOrder() throws {
        let c = try gw.connect()
        var raw = ""
        for i in 0..<50 {
            // Every fifth one has no token: its 401 must come back in its place.
            raw += "GET /api/v3/p/\(i) HTTP/1.1\r\nHost: x\r\n" + (i % 5 == 4 ? "" : gw.bearer) + "\r\n"
        }
        try c.send(raw)
        for i in 0..<50 {
            let r = try c.readResponse()
            if i % 5 == 4 {
                XCTAssertEqual(r.status, 401, "request \(i)")
            } else {
                XCTAssertEqual(r.status, 200, "request \(i)")
                XCTAssertEqual(r.json?["path"] as? String, "/api/v3/p/\(i)")
            }
        }
    }

    /// A client that pipelines thousands of requests without reading: the gateway stops reading
    /// it while answers wait (backpressure), then answers every one in order once it reads;
    /// never a 500 and a dropped rest. The answers (~8 MB) are more than the kernel's socket
    /// buffers (up to 4 MiB sent, 128 KiB received while unread) and the output buffer hold.
    func testAClientThatPipelinesWithoutReadingGetsEveryAnswerOnceItReads() throws {
        let c = try gw.connect()
        let count = 70_000
        var raw = ""
        for i in 0..<count {
            raw += i % 2 == 0 ? "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" : "GET /api/v3/q/\(i) HTTP/1.1\r\nHost: x\r\n\r\n"
        }
        let bytes = Array(raw.utf8)
        let sent = Locked(0), blocked = Locked(0)
        let fd = c.fd
        let writer = Thread {
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_DONTWAIT)) }
                if n > 0 { done += n; continue }
                guard errno == EAGAIN else { return }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, 500) == 0 { blocked.add() }  // no room for 0.5 s: the gateway stopped reading
            }
            sent.add()
        }
        writer.start()
        // Read only once the gateway has done all it will without the client reading: the
        // writer is stuck or done, and the access log has stopped growing.
        XCTAssertTrue(waitUntil(seconds: 10) { sent.value == 1 || blocked.value > 0 })
        var logSize = -1, stableSince = Date()
        XCTAssertTrue(waitUntil(seconds: 20) {
            let size = self.gw.log.utf8.count
            if size != logSize { logSize = size; stableSince = Date() }
            return Date().timeIntervalSince(stableSince) > 0.5
        })
        var seen: [UInt8] = [], statuses: [Int] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let marker = Array("HTTP/1.1 ".utf8)
        var scanned = 0
        while statuses.count < count {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            guard n > 0 else { break }
            seen += chunk[0..<n]
            // Status lines: "HTTP/1.1 NNN" at the start of each answer (bodies are JSON).
            while scanned + 12 <= seen.count {
                if seen[scanned] == marker[0] && Array(seen[scanned..<scanned + 9]) == marker {
                    statuses.append(Int(String(decoding: seen[scanned + 9..<scanned + 12], as: UTF8.self)) ?? 0)
                    scanned += 12
                } else {
                    scanned += 1
                }
            }
        }
        XCTAssertEqual(statuses.count, count)
        XCTAssertEqual(statuses.firstIndex { $0 == 500 }, nil, "no answer is given up for lack of room")
        for (i, status) in statuses.enumerated() where status != (i % 2 == 0 ? 200 : 401) {
            XCTFail("answer \(i) is \(status)")
            break
        }
        XCTAssertTrue(waitUntil { sent.value == 1 }, "every request was taken")
    }

    func testConnectionCloseIsHonoured() throws {
        let c = try gw.connect()
        try c.send("GET /api/v3/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\(gw.bearer)\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("connection"), "close")
        XCTAssertTrue(c.peerClosed())
    }

    func testHTTP10ClientGetsAnAnswerItCanFrame() throws {
        let c = try gw.connect()
        try c.send("GET /api/v3/chunked/1000 HTTP/1.0\r\nHost: x\r\n\(gw.bearer)\r\n")
        let raw = c.readToEnd()
        let text = String(decoding: raw, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"), text)
        XCTAssertFalse(text.lowercased().contains("transfer-encoding"), "no chunked toward HTTP/1.0")
        XCTAssertTrue(text.hasSuffix(String(decoding: DemoPattern.bytes(1000), as: UTF8.self)))
    }

    func testTwentyMebibytesUpAndDownArriveIntact() throws {
        gw = try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "UPSTREAM"
            max_body = "64MiB"
            """)
        let size = 20 * 1024 * 1024
        var body = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4096) { body[i] = UInt8(truncatingIfNeeded: i / 4096 &* 31) }
        let want = Crypto.hex(Crypto.sha256(body))
        // Up, with Content-Length.
        let c = try gw.connect()
        try c.send("POST /api/v3/upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\(gw.bearer)\r\n")
        try c.send(body)
        let up = try c.readResponse()
        XCTAssertEqual(up.json?["body_bytes"] as? Int, size)
        XCTAssertEqual(up.json?["body_sha256"] as? String, want)
        // Up, chunked, on the same connection.
        var chunked: [UInt8] = []
        for start in stride(from: 0, to: size, by: 1_000_003) {
            let part = body[start..<min(size, start + 1_000_003)]
            chunked += Array(String(part.count, radix: 16).utf8) + [13, 10] + part + [13, 10]
        }
        chunked += Array("0\r\n\r\n".utf8)
        try c.send("POST /api/v3/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\(gw.bearer)\r\n")
        try c.send(chunked)
        let up2 = try c.readResponse()
        XCTAssertEqual(up2.json?["body_bytes"] as? Int, size)
        XCTAssertEqual(up2.json?["body_sha256"] as? String, want)
        // Down: Content-Length, chunked, and close-delimited answers.
        for kind in ["bytes", "chunked", "close"] {
            let d = try gw.connect()
            try d.send("GET /api/v3/\(kind)/\(size) HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
            let r = try d.readResponse()
            XCTAssertEqual(r.status, 200, kind)
            XCTAssertEqual(r.body.count, size, kind)
            XCTAssertEqual(Crypto.hex(Crypto.sha256(r.body)), Crypto.hex(Crypto.sha256(DemoPattern.bytes(size))), kind)
        }
    }

    func testHeadAnswerHasNoBody() throws {
        let c = try gw.connect()
        try c.send("HEAD /api/v3/bytes/500 HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        let r = try c.readResponse(headRequest: true)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("content-length"), "500")
        try c.send("GET /api/v3/after HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try c.readResponse().json?["path"] as? String, "/api/v3/after", "framing stayed in step")
    }

    func testExpectContinueUnauthorizedGets401WithoutSendingTheBody() throws {
        let c = try gw.connect()
        try c.send("POST /api/v3/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 401)
    }

    func testExpectContinueAuthorizedGets100ThenTheAnswer() throws {
        let c = try gw.connect()
        try c.send("POST /api/v3/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try c.readResponse().status, 100)
        try c.send("hello")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json?["body_bytes"] as? Int, 5)
        XCTAssertEqual(r.upstreamHeader("expect"), [])
    }

    func testBodyOverTheRouteLimitIs413() throws {
        gw = try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "UPSTREAM"
            max_body = 1000
            """)
        let c = try gw.connect()
        try c.send("POST /api/v3/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try c.readResponse().status, 413)
        let d = try gw.connect()
        try d.send("POST /api/v3/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\(gw.bearer)\r\n")
        try d.send("3e8\r\n" + String(repeating: "a", count: 1000) + "\r\n1\r\nb\r\n0\r\n\r\n")
        XCTAssertEqual(try d.readResponse().status, 413)
    }

    func testWebSocketUpgradeWithTokenBecomesATunnel() throws {
        let c = try gw.connect()
        try c.send("GET /api/v3/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(gw.bearer)\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 101)
        try c.send("ping-through-the-tunnel")
        c.setTimeout(2)
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 100)
        while got.count < 23 {
            let n = recv(c.fd, &chunk, 100, 0)
            if n <= 0 { break }
            got += chunk[0..<n]
        }
        XCTAssertEqual(String(decoding: got, as: UTF8.self), "ping-through-the-tunnel")
    }

    func testWebSocketUpgradeWithoutTokenIs401() throws {
        let r = try gw.get("/api/v3/ws", headers: "Upgrade: websocket\r\nConnection: Upgrade\r\n")
        XCTAssertEqual(r.status, 401)
    }
}

/// The demo upstream's fixed byte pattern.
enum DemoPattern {
    static let pattern: [UInt8] = Array("0123456789abcdefghijklmnopqrstuvwxyz\n".utf8)
    static func bytes(_ n: Int) -> [UInt8] { (0..<n).map { pattern[$0 % pattern.count] } }
}
