import Foundation
import Glibc
import XCTest

/// Whose failures count: the socket peer, and X-Forwarded-For only from trusted proxies.
final class ClientAddressTests: XCTestCase {
    func login(_ gw: GatewayHarness, forwardedFor: String) throws -> Int {
        try gw.login(password: "wrong", headers: "X-Forwarded-For: \(forwardedFor)\r\n").status
    }

    func testForwardedForIsIgnoredFromAnUntrustedPeer() throws {
        let gw = try GatewayHarness(sections: "[login]\nfailure_delay = 0\nmax_failures_per_address = 2\nmax_failures_per_user = 100\n")
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.1"), 401)
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.2"), 401)
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.3"), 429, "a spoofed X-Forwarded-For does not dodge the per-address limit")
    }

    func testForwardedForIsBelievedFromATrustedProxy() throws {
        let gw = try GatewayHarness(settings: "trusted_proxies = [\"127.0.0.1\"]",
                                    sections: "[login]\nfailure_delay = 0\nmax_failures_per_address = 2\nmax_failures_per_user = 100\n")
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.1"), 401)
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.1"), 401)
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.1"), 429)
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.2"), 401, "another client behind the same proxy is not blocked")
        XCTAssertEqual(try login(gw, forwardedFor: "10.0.0.1, 127.0.0.1"), 429, "the rightmost untrusted entry counts")
    }
}

final class UpstreamConnectTimeoutTests: XCTestCase {
    func testUpstreamThatDoesNotAcceptIs504AtTheConnectTimeout() throws {
        // A listener with a full backlog that never accepts: the kernel drops further SYNs, so
        // a connect hangs (on loopback, without any other host).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        listen(fd, 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        var fillers: [Int32] = []
        defer { for f in fillers { close(f) } }
        for _ in 0..<4 {
            let f = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(f, $0, len) } }
            fillers.append(f)
        }
        // The backlog is full once a filler's handshake has completed: later SYNs are dropped.
        XCTAssertTrue(waitUntil {
            fillers.contains { f in
                var p = pollfd(fd: f, events: Int16(POLLOUT), revents: 0)
                var err: Int32 = 0
                var errLen = socklen_t(MemoryLayout<Int32>.size)
                return poll(&p, 1, 0) == 1 && getsockopt(f, SOL_SOCKET, SO_ERROR, &err, &errLen) == 0 && err == 0
            }
        }, "a filler connection fills the backlog")
        let gw = try GatewayHarness(settings: "connect_timeout = \"1s\"", routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "http://127.0.0.1:\(port)"
            auth = "none"
            """, startUpstream: false)
        let start = Date()
        let r = try gw.get("/api/v3/x")
        let took = Date().timeIntervalSince(start)
        XCTAssertEqual(r.status, 504)
        XCTAssertGreaterThanOrEqual(took, 0.9)
        XCTAssertLessThan(took, 4)
    }
}
