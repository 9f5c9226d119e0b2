import CGatewayShims
import Foundation
import Glibc
import TokenCore
import XCTest

/// HTTPS on its own listener: the same proxy and endpoints over a TLS transport (OpenSSL over
/// memory BIOs), against the real binary with a self-signed certificate from `gateway tls
/// self-signed` and an OpenSSL client that verifies it.
final class TLSTests: XCTestCase {
    private var gw: GatewayHarness!

    override func tearDown() {
        gw?.stop()
        gw = nil
    }

    func testLoginAndProxiedCallOverTLS() throws {
        gw = try GatewayHarness(tls: true)
        let c = try gw.connectTLS()
        XCTAssertEqual(c.alpnSelected, "http/1.1")
        let body = #"{"username":"admin","password":"test-password-not-used"}"#
        try c.send("POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let login = try c.readResponse()
        XCTAssertEqual(login.status, 200, login.text)
        let token = try XCTUnwrap(login.json?["access_token"] as? String)
        try c.send("GET /api/v3/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.upstreamHeader("X-Forwarded-User"), ["admin"])
        XCTAssertEqual(r.upstreamHeader("X-Forwarded-Proto"), ["https"], "the upstream learns the client used TLS")
        // The plain listener still answers, and says so.
        XCTAssertEqual(try gw.get("/api/v3/hello", headers: gw.bearer).upstreamHeader("X-Forwarded-Proto"), ["http"])
        // TLS 1.2 clients are served by default.
        let old = try gw.connectTLS { $0.maxVersion = Int32(TLS1_2_VERSION) }
        XCTAssertEqual(old.tlsVersion, "TLSv1.2")
        try old.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try old.readResponse().status, 200)
    }

    func testPipelinedRequestsOverTLSAreAnsweredInOrder() throws {
        gw = try GatewayHarness(tls: true)
        let c = try gw.connectTLS()
        var batch = ""
        for i in 0..<30 {
            batch += "GET /api/v3/item/\(i) HTTP/1.1\r\nHost: x\r\n\(i % 5 == 4 ? "" : gw.bearer)\r\n"
        }
        try c.send(batch)
        for i in 0..<30 {
            let r = try c.readResponse()
            if i % 5 == 4 {
                XCTAssertEqual(r.status, 401, "request \(i)")
            } else {
                XCTAssertEqual(r.json?["path"] as? String, "/api/v3/item/\(i)")
            }
        }
    }

    func testLargeBodiesBothWaysOverTLSArriveIntact() throws {
        gw = try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "UPSTREAM"
            max_body = "64MiB"
            """, tls: true)
        let size = 8 * 1024 * 1024 + 7
        var body = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 1000) { body[i] = UInt8(truncatingIfNeeded: i / 1000 &* 13) }
        let c = try gw.connectTLS()
        try c.send("POST /api/v3/upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\(gw.bearer)\r\n")
        try c.send(body)
        let up = try c.readResponse()
        XCTAssertEqual(up.json?["body_bytes"] as? Int, size)
        XCTAssertEqual(up.json?["body_sha256"] as? String, Crypto.hex(Crypto.sha256(body)))
        let want = Crypto.hex(Crypto.sha256(DemoPattern.bytes(size)))
        for kind in ["bytes", "chunked", "close"] {
            try c.send("GET /api/v3/\(kind)/\(size) HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200, kind)
            XCTAssertEqual(r.body.count, size, kind)
            XCTAssertEqual(Crypto.hex(Crypto.sha256(r.body)), want, kind)
            if kind == "close" { break }   // close-delimited answers end the connection
        }
    }

    func testBadTokenOverTLSGets401AndNothingIsForwarded() throws {
        let spy = try SpyUpstream()
        gw = try GatewayHarness(spy: spy, tls: true)
        let c = try gw.connectTLS()
        for headers in ["", "Authorization: Bearer abc.def.ghi\r\n", "Authorization: Bearer \(gw.token(use: .refresh))\r\n"] {
            try c.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n\(headers)\r\n")
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 401)
            XCTAssertEqual(r.header("www-authenticate"), #"Bearer error="invalid_token""#)
        }
        XCTAssertEqual(spy.received(), [], "no request reached the upstream")
    }

    func testPlainHTTPAndGarbageOnTheTLSPortAreCutAndNothingIsForwarded() throws {
        let spy = try SpyUpstream()
        gw = try GatewayHarness(spy: spy, auth: "none", settings: #"header_timeout = "1s""#, tls: true)
        let plain = try RawClient(port: gw.tlsPort, timeout: 5)
        try plain.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = plain.readToEnd()
        XCTAssertFalse(String(decoding: answer, as: UTF8.self).contains("HTTP/1.1"), "no plaintext answer on the TLS port")
        for seed in 0..<20 {
            let g = try RawClient(port: gw.tlsPort, timeout: 5)
            var bytes = [UInt8](repeating: 0, count: 64 + seed * 97)
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: (i &* 131) ^ (seed &* 7919) ^ (i >> 3)) }
            if seed % 2 == 0 { bytes[0] = 0x16; bytes[1] = 0x03; bytes[2] = 0x01 }   // looks like a handshake record
            try? g.send(bytes)
            XCTAssertTrue(g.peerClosed(), "garbage \(seed) ends the connection")
        }
        XCTAssertEqual(spy.received(), [], "nothing reached the upstream")
        let c = try gw.connectTLS()
        try c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 200, "the worker still serves TLS")
    }

    func testMinimumVersionSettingRefusesOlderClients() throws {
        gw = try GatewayHarness(tls: true, tlsSettings: #"min_version = "1.3""#)
        XCTAssertThrowsError(try gw.connectTLS { $0.maxVersion = Int32(TLS1_2_VERSION) })
        let c = try gw.connectTLS()
        XCTAssertEqual(c.tlsVersion, "TLSv1.3")
        try c.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try c.readResponse().status, 200)
    }

    func testALPNChoosesH2ThenHTTP11InTheServersOrder() throws {
        gw = try GatewayHarness(tls: true)
        XCTAssertEqual(try gw.connectTLS { $0.alpn = ["h2"] }.alpnSelected, "h2")
        XCTAssertEqual(try gw.connectTLS { $0.alpn = ["http/1.1", "h2"] }.alpnSelected, "h2", "the server's preference")
        XCTAssertEqual(try gw.connectTLS { $0.alpn = ["http/1.1"] }.alpnSelected, "http/1.1")
        XCTAssertEqual(try gw.connectTLS { $0.alpn = ["spdy/3"] }.alpnSelected, "", "nothing it does not speak")
        let none = try gw.connectTLS { $0.alpn = [] }
        try none.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try none.readResponse().status, 200)
    }

    func testWithHTTP2OffALPNNeverChoosesH2() throws {
        gw = try GatewayHarness(settings: "http2 = false", tls: true)
        XCTAssertEqual(try gw.connectTLS { $0.alpn = ["h2"] }.alpnSelected, "", "h2 is not offered back")
        let c = try gw.connectTLS { $0.alpn = ["h2", "http/1.1"] }
        XCTAssertEqual(c.alpnSelected, "http/1.1")
        try c.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try c.readResponse().status, 200)
    }

    func testNewCertificateIsServedAfterReloadWhileOpenConnectionsKeepWorking() throws {
        gw = try GatewayHarness(tls: true)
        let before = try gw.connectTLS()
        let first = before.peerCertificateSHA256
        XCTAssertFalse(first.isEmpty)
        let made = try GatewayBinary.run(["tls", "self-signed", "--cert", gw.certPath, "--key", gw.keyPath, "--days", "2"])
        XCTAssertEqual(made.status, 0, made.stderr)
        gw.signal(SIGHUP)
        var second = first
        XCTAssertTrue(waitUntil(seconds: 5) { second = (try? self.gw.connectTLS().peerCertificateSHA256) ?? first; return second != first })
        XCTAssertNotEqual(second, first, "new connections get the new certificate")
        try before.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try before.readResponse().status, 200, "the open connection keeps its session")
    }

    func testBrokenCertificateOnReloadIsRefusedAndTheOldOneStays() throws {
        gw = try GatewayHarness(tls: true)
        let trusted = try gw.dir.write("trusted.pem", try String(contentsOfFile: gw.certPath, encoding: .utf8))
        let first = try gw.connectTLS().peerCertificateSHA256
        try "not a certificate".write(toFile: gw.certPath, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        XCTAssertTrue(waitUntil(seconds: 10) { self.gw.log.contains("reload refused") }, gw.log)
        XCTAssertEqual(try gw.connectTLS { $0.caFile = trusted }.peerCertificateSHA256, first)
    }

    func testSilentOrStalledHandshakeIsCutAtTheHeaderTimeout() throws {
        gw = try GatewayHarness(settings: #"header_timeout = "1s""#, tls: true)
        let silent = try RawClient(port: gw.tlsPort, timeout: 5)
        let stalled = try RawClient(port: gw.tlsPort, timeout: 5)
        try stalled.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])   // the start of a ClientHello, then nothing
        let start = Date()
        XCTAssertTrue(silent.peerClosed())
        XCTAssertTrue(stalled.peerClosed())
        XCTAssertLessThan(Date().timeIntervalSince(start), 4)
    }

    func testWebSocketTunnelOverTLS() throws {
        gw = try GatewayHarness(tls: true)
        let c = try gw.connectTLS()
        try c.send("GET /api/v3/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try c.readResponse().status, 101)
        let message = String(repeating: "echo-through-tls ", count: 2000)
        try c.send(message)
        XCTAssertEqual(String(decoding: try c.readExactly(message.utf8.count), as: UTF8.self), message)
    }

    func testCheckConfigNamesTLSProblems() throws {
        let dir = try TempDir()
        let made = try GatewayBinary.run(["tls", "self-signed", "--cert", dir.path("a.pem"), "--key", dir.path("a.key")])
        XCTAssertEqual(made.status, 0)
        _ = try GatewayBinary.run(["tls", "self-signed", "--cert", dir.path("b.pem"), "--key", dir.path("b.key")])
        func check(_ tls: String) throws -> GatewayBinary.Result {
            let path = try dir.write("g.conf", "[server]\nlisten = \"127.0.0.1:18080\"\ndata_dir = \"\(dir.path("d"))\"\n[tls]\nenable = true\n\(tls)\n")
            return try GatewayBinary.run(["check-config", "--config", path], environment: ["PATH": "/usr/bin:/bin"])
        }
        let missing = try check("cert_file = \"\(dir.path("a.pem"))\"")
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("tls.key_file"), missing.stderr)
        let mismatched = try check("cert_file = \"\(dir.path("a.pem"))\"\nkey_file = \"\(dir.path("b.key"))\"")
        XCTAssertEqual(mismatched.status, 1)
        XCTAssertTrue(mismatched.stderr.contains("does not match"), mismatched.stderr)
        let absent = try check("cert_file = \"\(dir.path("none.pem"))\"\nkey_file = \"\(dir.path("a.key"))\"")
        XCTAssertEqual(absent.status, 1)
        XCTAssertTrue(absent.stderr.contains("certificate file"), absent.stderr)
        let sameAddress = try check("address = \"127.0.0.1:18080\"\ncert_file = \"\(dir.path("a.pem"))\"\nkey_file = \"\(dir.path("a.key"))\"")
        XCTAssertEqual(sameAddress.status, 1)
        XCTAssertTrue(sameAddress.stderr.contains("tls.address"), sameAddress.stderr)
        let good = try check("cert_file = \"\(dir.path("a.pem"))\"\nkey_file = \"\(dir.path("a.key"))\"")
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertFalse(good.stdout.contains("BEGIN"), "no key material printed")
    }
}
