import Foundation
import Glibc
import XCTest

/// Failures and hostile clients: upstream down, slow, clients that stall, abort or send noise.
/// Each test is bounded in time and in count.
final class ProxyResilienceTests: XCTestCase {
    func testUpstreamDownIs502AndRecoversWhenItIsBack() throws {
        let gw = try GatewayHarness(startUpstream: false)
        let r = try gw.get("/api/v3/x", headers: gw.bearer)
        XCTAssertEqual(r.status, 502)
        XCTAssertEqual(r.json?["code"] as? Int, 502)
        try gw.startDemoUpstream()
        XCTAssertEqual(try gw.get("/api/v3/x", headers: gw.bearer).status, 200)
        // Killed while its connections sit in the pool: the next request still succeeds or is a clean 502.
        gw.stopUpstream()
        let after = try gw.get("/api/v3/x", headers: gw.bearer)
        XCTAssertEqual(after.status, 502)
        try gw.startDemoUpstream()
        XCTAssertEqual(try gw.get("/api/v3/y", headers: gw.bearer).status, 200)
    }

    func testSlowUpstreamGets504AtTheResponseTimeout() throws {
        let gw = try GatewayHarness(settings: "response_timeout = \"1s\"")
        let start = Date()
        let r = try gw.get("/api/v3/slow?delay_ms=4000", headers: gw.bearer)
        let took = Date().timeIntervalSince(start)
        XCTAssertEqual(r.status, 504)
        XCTAssertGreaterThanOrEqual(took, 0.9)
        XCTAssertLessThan(took, 3.5)
    }

    func testSlowlorisIsCutWithinTheHeaderTimeout() throws {
        let gw = try GatewayHarness(settings: "header_timeout = \"1s\"")
        let c = try gw.connect()
        try c.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n")
        let start = Date()
        var cut = false
        for _ in 0..<40 {
            usleep(100_000)
            do { try c.send("X-Drip: 1\r\n") } catch { cut = true; break }
        }
        let closed = c.peerClosed()
        XCTAssertTrue(cut || closed)
        XCTAssertLessThan(Date().timeIntervalSince(start), 3.5)
        XCTAssertEqual(try gw.get("/healthz").status, 200, "others are still served")
    }

    func testIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout() throws {
        let gw = try GatewayHarness(settings: "idle_timeout = \"1s\"")
        let c = try gw.connect()
        try c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 200)
        c.setTimeout(4)
        let start = Date()
        XCTAssertTrue(c.peerClosed())
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
    }

    /// Backpressure does not let a client hold a connection by never reading: once its answers
    /// have waited idle_timeout without the client taking a byte, the connection is closed.
    func testAClientThatNeverReadsItsAnswersIsClosedAfterTheIdleTimeout() throws {
        let gw = try GatewayHarness(settings: "idle_timeout = \"1s\"")
        let c = try gw.connect()
        let fd = c.fd
        let bytes = Array(String(repeating: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", count: 70_000).utf8)
        let writer = Thread {
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                done += n
            }
        }
        writer.start()
        let start = Date()
        XCTAssertTrue(waitUntil(seconds: 8) {
            var p = pollfd(fd: fd, events: 0x2000, revents: 0)  // POLLRDHUP
            return poll(&p, 1, 0) > 0 && p.revents & (Int16(POLLHUP | POLLERR) | 0x2000) != 0
        }, "the gateway ends the connection")
        XCTAssertGreaterThan(Date().timeIntervalSince(start), 0.9, "not before the idle timeout")
        XCTAssertEqual(try gw.get("/healthz").status, 200, "the worker serves others")
    }

    func testClientAbortingMidStreamDoesNotHarmOthers() throws {
        let gw = try GatewayHarness()
        for _ in 0..<5 {
            let c = try gw.connect()
            try c.send("GET /api/v3/bytes/50000000 HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
            var chunk = [UInt8](repeating: 0, count: 65536)
            _ = recv(c.fd, &chunk, chunk.count, 0)
            c.close()  // gone mid-download
            let u = try gw.connect()
            try u.send("POST /api/v3/up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\(gw.bearer)\r\n")
            try u.send([UInt8](repeating: 1, count: 100_000))
            u.close()  // gone mid-upload
        }
        let r = try gw.get("/api/v3/still-fine", headers: gw.bearer)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json?["path"] as? String, "/api/v3/still-fine")
    }

    /// A request the client cut short still gets its access-log line, saying why it ended and
    /// with the errno of the call that failed.
    func testARequestCutShortByAResetIsLoggedWithWhy() throws {
        let gw = try GatewayHarness()
        do {
            let c = try gw.connect()
            try c.send("GET /api/v3/bytes/50000000 HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
            var chunk = [UInt8](repeating: 0, count: 65536)
            XCTAssertGreaterThan(recv(c.fd, &chunk, chunk.count, 0), 0)
            var reset = linger(l_onoff: 1, l_linger: 0)
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
        }  // closed with unread bytes and no linger: a reset
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("GET /api/v3/bytes/50000000 200") }, gw.log)
        let line = gw.log.split(separator: "\n").first { $0.contains("/api/v3/bytes/50000000") } ?? ""
        XCTAssertTrue(line.contains(" closed=client_"), String(line))
        XCTAssertTrue(line.contains(" errno="), String(line))
    }

    func testFiveHundredConcurrentKeepAliveConnectionsAreAllServed() throws {
        let gw = try GatewayHarness(workers: 2)
        let bearer = gw.bearer
        var clients: [RawClient] = []
        for _ in 0..<500 { clients.append(try gw.connect()) }
        for (i, c) in clients.enumerated() { try c.send("GET /api/v3/k/\(i) HTTP/1.1\r\nHost: x\r\n\(bearer)\r\n") }
        var ok = 0
        for (i, c) in clients.enumerated() {
            let r = try c.readResponse()
            if r.status == 200 && r.json?["path"] as? String == "/api/v3/k/\(i)" { ok += 1 }
        }
        XCTAssertEqual(ok, 500)
        // The same connections are still usable (keep-alive).
        for c in clients.prefix(20) { try c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") }
        for c in clients.prefix(20) { XCTAssertEqual(try c.readResponse().status, 200) }
    }

    func testRandomBytesOnFiftyConnectionsNeverCrashTheWorker() throws {
        let gw = try GatewayHarness()
        var generator = SystemRandomNumberGenerator()
        for i in 0..<50 {
            let c = try gw.connect()
            c.setTimeout(2)
            var noise = (0..<Int.random(in: 1...4000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if i % 2 == 0 { noise = Array("GET /api/v3/ HTTP/1.1\r\n".utf8) + noise }
            try? c.send(noise)
            if i % 3 == 0 { try? c.send("\r\n\r\n") }
            _ = c.readToEnd()
        }
        let r = try gw.get("/api/v3/alive", headers: gw.bearer)
        XCTAssertEqual(r.status, 200)
    }
}
