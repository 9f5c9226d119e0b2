import Foundation
import Glibc
import TokenCore
import XCTest

/// Running the gateway: signals, reload, limits, check-config, first start without keys.
final class OperationsTests: XCTestCase {
    func testSIGTERMLetsTheRequestInFlightFinishAndExitsZero() throws {
        let arrived = Locked(false)
        let upstream = try RecordingUpstream { _ in
            arrived.withLock { $0 = true }
            usleep(800_000)  // a slow upstream: its answer is what the drain waits for
            return .ok("slow")
        }
        let gw = try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "http://127.0.0.1:\(upstream.port)"
            auth = "required"
            """, startUpstream: false)
        let c = try gw.connect()
        try c.send("GET /api/v3/slow HTTP/1.1\r\nHost: x\r\n\(gw.bearer)\r\n")
        XCTAssertTrue(waitUntil(seconds: 5) { arrived.value }, "the request is with the upstream")
        gw.signal(SIGTERM)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200, "the request in flight finished")
        let p = gw.gateway!
        XCTAssertTrue(waitUntil(seconds: 10) { !p.isRunning })
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertThrowsError(try RawClient(port: gw.port, timeout: 1), "no longer listening")
    }

    func testSIGHUPReloadsRoutesAndAnInvalidFileChangesNothing() throws {
        let gw = try GatewayHarness()
        XCTAssertEqual(try gw.get("/open/x").status, 200)
        // A broken file: refused, the old routes stay.
        let original = try String(contentsOfFile: gw.configPath, encoding: .utf8)
        try (original + "\nthis is not toml\n").write(toFile: gw.configPath, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("reload refused") }, gw.log)
        XCTAssertEqual(try gw.get("/open/x").status, 200)
        // A valid change: /open/ becomes protected.
        try original.replacingOccurrences(of: "auth = \"none\"", with: "auth = \"required\"")
            .write(toFile: gw.configPath, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        XCTAssertTrue(waitUntil(seconds: 10) { (try? gw.get("/open/x").status) == 401 })
        XCTAssertEqual(try gw.get("/open/x", headers: gw.bearer).status, 200)
        XCTAssertTrue(waitUntil(seconds: 5) { gw.log.contains("reloaded configuration") }, gw.log)
    }

    func testSIGHUPPicksUpARotatedKeysFile() throws {
        let gw = try GatewayHarness()
        let newKey = KeyRing.generateKey(state: .active, now: 0)
        var demoted = gw.ring.keys
        demoted[1].state = .verify
        let rotated = try KeyRing(keys: demoted + [newKey])
        try rotated.jwkSetText().write(toFile: gw.dir.path("keys.json"), atomically: true, encoding: .utf8)
        let fresh = try TokenIssuer(settings: IssuerSettings()).issue(subject: "n", use: .access, ring: rotated, now: Int64(Date().timeIntervalSince1970)).token
        XCTAssertEqual(try gw.get("/api/v3/x", headers: "Authorization: Bearer \(fresh)\r\n").status, 401, "unknown kid before reload")
        gw.signal(SIGHUP)
        XCTAssertTrue(waitUntil(seconds: 10) { (try? gw.get("/api/v3/x", headers: "Authorization: Bearer \(fresh)\r\n").status) == 200 })
        XCTAssertEqual(try gw.get("/api/v3/x", headers: gw.bearer).status, 200, "tokens of the demoted key still pass")
    }

    func testAtMaxConnectionsBusyConnectionsAreKeptAndAcceptingWaitsForOneToClose() throws {
        let gw = try GatewayHarness(settings: "max_connections = 3")
        var held: [RawClient] = []
        for _ in 0..<3 {
            let c = try gw.connect()
            try c.send("GET /healthz HTTP/1.1\r\n")  // not idle: part of a head has come
            held.append(c)
        }
        XCTAssertTrue(waitUntil {
            held.allSatisfy { KernelSocketView.unreadBytes(localPort: gw.port, remotePort: KernelSocketView.localPort(of: $0.fd)) == 0 }
        }, "the gateway has read the three partial heads")
        let waiting = try gw.connect()  // the kernel accepts it into the backlog; the gateway does not
        waiting.setTimeout(1)
        try waiting.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertThrowsError(try waiting.readResponse(), "not served while at the limit")
        try held[1].send("Host: x\r\n\r\n")
        XCTAssertEqual(try held[1].readResponse().status, 200, "the busy one was kept and finishes its request")
        held.removeFirst().close()
        waiting.setTimeout(5)
        XCTAssertEqual(try waiting.readResponse().status, 200, "served once a slot is free")
    }

    /// A health check on `c`, kept alive: its status.
    private func healthCheck(_ c: RawClient) throws -> Int {
        try c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return try c.readResponse().status
    }

    func testAtMaxConnectionsEachNewcomerTakesTheRoomOfOneIdleConnectionOldestFirst() throws {
        let gw = try GatewayHarness(settings: "max_connections = 4")
        let old = try (0..<4).map { _ in try gw.connect() }
        for c in old { XCTAssertEqual(try healthCheck(c), 200) }
        XCTAssertEqual(try healthCheck(old[3]), 200, "the last of the four is used again: it has waited least")
        var newcomers: [RawClient] = []  // held open: each keeps its room
        for _ in 0..<3 {
            let newcomer = try gw.connect()
            newcomer.setTimeout(5)
            XCTAssertEqual(try healthCheck(newcomer), 200, "each newcomer is served at once")
            newcomers.append(newcomer)
        }
        for c in old[0..<3] {
            c.setTimeout(5)
            XCTAssertTrue(c.peerClosed(), "the three that waited longest made room")
        }
        XCTAssertEqual(try healthCheck(old[3]), 200, "the one used last stays: \(gw.log)")
        XCTAssertTrue(waitUntil { gw.log.contains("max_connections (4) reached: ") }, gw.log)
    }

    func testAtMaxConnectionsATLSClientInTheMiddleOfItsHandshakeKeepsItsRoom() throws {
        let gw = try GatewayHarness(settings: "max_connections = 1", tls: true)
        let partial = try RawClient(port: gw.tlsPort)  // TCP only: the first bytes of a ClientHello
        try partial.send([0x16, 0x03, 0x01, 0x00, 0xC8, 0x01, 0x00, 0x00, 0xC4, 0x03, 0x03])
        XCTAssertTrue(waitUntil {
            KernelSocketView.unreadBytes(localPort: gw.tlsPort, remotePort: KernelSocketView.localPort(of: partial.fd)) == 0
        }, "the gateway has read them")
        let waiting = try gw.connect()
        waiting.setTimeout(1)
        try waiting.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertThrowsError(try waiting.readResponse(), "not served: a handshake under way is not cut for it")
        partial.close()
        waiting.setTimeout(5)
        XCTAssertEqual(try waiting.readResponse().status, 200, "served once that connection has gone")
    }

    func testAtMaxConnectionsConnectionsThatSentNothingMakeRoomToo() throws {
        let gw = try GatewayHarness(settings: "max_connections = 2")
        let silent = try (0..<2).map { _ in try gw.connect() }
        let newcomer = try gw.connect()
        newcomer.setTimeout(5)
        try newcomer.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try newcomer.readResponse().status, 200, "silent connections do not hold the gateway's slots")
        for c in silent { c.setTimeout(0.5) }
        XCTAssertEqual(silent.filter { $0.peerClosed() }.count, 1)
    }

    func testAtMaxConnectionsAClientWaitsOnlyUntilABusyConnectionTurnsIdle() throws {
        let gw = try GatewayHarness(settings: "max_connections = 1")
        let busy = try gw.connect()
        try busy.send("GET /open/slow?delay_ms=800 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(waitUntil { KernelSocketView.establishedConnections(toPort: gw.upstreamPort) >= 1 }, "the request is upstream")
        let newcomer = try gw.connect()
        try newcomer.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        busy.setTimeout(5)
        XCTAssertEqual(try busy.readResponse().status, 200, "the busy connection was left to finish")
        let idleAt = Date()
        newcomer.setTimeout(5)
        XCTAssertEqual(try newcomer.readResponse().status, 200, "served once the busy connection turned idle")
        XCTAssertLessThan(Date().timeIntervalSince(idleAt), 3, "within a sweep or two, not at the idle timeout")
    }

    func testAReloadBelowTheOpenConnectionsAnswersARequestThatHadBegunThenCloses() throws {
        let gw = try GatewayHarness()
        let started = try (0..<2).map { _ in try gw.connect() }
        for c in started { try c.send("GET /healthz HTTP/1.1\r\n") }
        XCTAssertTrue(waitUntil {
            started.allSatisfy { KernelSocketView.unreadBytes(localPort: gw.port, remotePort: KernelSocketView.localPort(of: $0.fd)) == 0 }
        }, "the gateway has read both partial heads")
        let text = try String(contentsOfFile: gw.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "[server]\n", with: "[server]\nmax_connections = 1\n").write(toFile: gw.configPath, atomically: true, encoding: .utf8)
        XCTAssertEqual(try GatewayBinary.run(["reload", "--config", gw.configPath]).status, 0)
        XCTAssertTrue(waitUntil { gw.log.contains("1 more asked to go") }, gw.log)
        var closing = 0
        for c in started {
            c.setTimeout(5)
            try c.send("Host: x\r\n\r\n")
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200, "the request that had begun is answered")
            if r.header("Connection") == "close" {
                closing += 1
                XCTAssertTrue(c.peerClosed(), "then the connection closes")
            }
        }
        XCTAssertEqual(closing, 1, "one of the two was asked to go")
    }

    func testAConnectionThatTurnsHTTP2WhileTheGatewayDrainsIsSentGoaway() throws {
        let gw = try GatewayHarness(settings: "shutdown_timeout = \"20s\"")
        let c = try gw.connect()
        try c.send("PRI * HTTP/2.0\r\n")  // part of the preface
        XCTAssertTrue(waitUntil { KernelSocketView.unreadBytes(localPort: gw.port, remotePort: KernelSocketView.localPort(of: c.fd)) == 0 })
        gw.signal(SIGTERM)
        XCTAssertTrue(waitUntil { gw.log.contains("SIGTERM: draining") }, gw.log)
        // The rest of the preface and an empty SETTINGS frame.
        try c.send(Array("\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 0x04, 0, 0, 0, 0, 0])
        c.setTimeout(10)
        let started = Date()
        var bytes = c.readToEnd()
        var types: [UInt8] = []
        while bytes.count >= 9 {
            let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
            types.append(bytes[3])
            bytes.removeFirst(min(bytes.count, 9 + length))
        }
        XCTAssertTrue(types.contains(0x07), "GOAWAY, as every connection got at the drain: frames \(types)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 8, "and closed, not held until shutdown_timeout")
    }

    func testASecondGatewayOnTheSameAddressRefusesToStart() throws {
        let gw = try GatewayHarness()
        let r = try GatewayBinary.run(["run", "--config", gw.configPath], timeout: 20)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("already in use"), r.stderr)
        XCTAssertEqual(try gw.get("/api/v3/x", headers: gw.bearer).status, 200, "the first one still serves everything")
    }

    func testCheckConfigPrintsTheEffectiveConfigurationWithSecretsMasked() throws {
        let dir = try TempDir()
        let path = try dir.write("g.conf", """
            [server]
            listen = "127.0.0.1:18999"
            [api.auth]
            username = "admin"
            password = "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$/HBtt7Z/7p0CzRvSN1B+KXrKNskvRts1UWw61zKTFUo"
            [api.auth.jwt]
            secret = "a-secret-that-is-long-enough-0123456789"
            """)
        let r = try GatewayBinary.run(["check-config", "--config", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("listen = \"127.0.0.1:18999\""), r.stdout)
        XCTAssertFalse(r.stdout.contains("a-secret-that-is-long-enough"), "the secret is masked")
        XCTAssertFalse(r.stdout.contains("c2FsdHNh"), "the password hash is masked")
    }

    func testCheckConfigNamesTheLineOfAnError() throws {
        let dir = try TempDir()
        let path = try dir.write("g.conf", "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n")
        let r = try GatewayBinary.run(["check-config", "--config", path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(":3"), r.stderr)
        XCTAssertTrue(r.stderr.contains("server.listen"), "suggests the right key: \(r.stderr)")
    }

    func testShortSecretFromTheEnvironmentIsRefusedAtStart() throws {
        let dir = try TempDir()
        let path = try dir.write("g.conf", "[server]\nlisten = \"127.0.0.1:\(try freePort())\"\n")
        let r = try GatewayBinary.run(["run", "--config", path], environment: ["GATEWAY_API_AUTH_JWT_SECRET": "short"], timeout: 20)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("at least 32 bytes"), r.stderr)
        XCTAssertFalse(r.stderr.contains("short\""), "the secret is not echoed")
    }

    func testFirstStartWithoutKeysCreatesAPrivateKeysFileAndSaysSo() throws {
        let dir = try TempDir()
        let port = try freePort()
        let path = try dir.write("g.conf", "[server]\nlisten = \"127.0.0.1:\(port)\"\ndata_dir = \"\(dir.path("data"))\"\n")
        let p = Process()
        p.executableURL = GatewayBinary.url
        p.arguments = ["run", "--config", path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        try waitForPort(port)
        var st = stat()
        XCTAssertEqual(stat(dir.path("data/keys.json"), &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let ring = try KeyRing.fromJWKSet(try String(contentsOfFile: dir.path("data/keys.json"), encoding: .utf8))
        XCTAssertEqual(ring.activeKey?.secret?.count, 32)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let log = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(log.contains("created a new signing key"), log)
    }
}
