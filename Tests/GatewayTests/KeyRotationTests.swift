import Foundation
import Glibc
import TokenCore
import XCTest

/// Rotating signing keys without downtime: the running gateway watches its keys file.
final class KeyRotationTests: XCTestCase {
    func token(_ ring: KeyRing, kid: String, sub: String = "u") throws -> String {
        let key = ring.keys.first { $0.kid == kid }!
        let signing = try KeyRing(keys: [Key(kid: kid, algorithm: key.algorithm, material: key.material, state: .active)])
        return try TokenIssuer(settings: IssuerSettings()).issue(subject: sub, use: .access, ring: signing, now: Int64(Date().timeIntervalSince1970)).token
    }

    func testRotatingThreeTimesUnderLoadFailsNoValidTokenAndRetiringRefusesAtOnce() throws {
        let gw = try GatewayHarness(workers: 2)
        let keysPath = gw.dir.path("keys.json")
        let before = try token(gw.ring, kid: "cur"), old = try token(gw.ring, kid: "old")
        let failures = Locked(0), served = Locked(0), stop = Locked(0)
        let tokens = Locked([before, old])
        let group = DispatchGroup()
        let port = gw.port
        for _ in 0..<4 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let c = try? RawClient(port: port, timeout: 5) else { failures.add(); return }
                var i = 0
                while stop.value == 0 {
                    let list = tokens.value
                    let t = list[i % list.count]
                    i += 1
                    guard (try? c.send("GET /api/v3/load HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(t)\r\n\r\n")) != nil,
                          let r = try? c.readResponse() else { failures.add(); return }
                    if r.status == 200 { served.add() } else { failures.add();  }
                }
            }
        }
        // Three rotations, each under load, each adding tokens of the new active key to the load.
        for _ in 1...3 {
            let servedBefore = served.value
            XCTAssertTrue(waitUntil(seconds: 10) { served.value >= servedBefore + 50 }, "the load runs")
            XCTAssertEqual(try GatewayBinary.run(["keys", "rotate", "--keys", keysPath]).status, 0)
            // The watcher polls once a second; the tokens of the new key join the load once the
            // gateway accepts them.
            let ring = try KeyRing.fromJWKSet(try String(contentsOfFile: keysPath, encoding: .utf8))
            let fresh = try token(ring, kid: ring.activeKey!.kid)
            XCTAssertTrue(waitUntil(seconds: 10) { (try? gw.get("/api/v3/x", headers: "Authorization: Bearer \(fresh)\r\n").status) == 200 })
            tokens.withLock { $0.append(fresh) }
        }
        let servedBefore = served.value
        XCTAssertTrue(waitUntil(seconds: 10) { served.value >= servedBefore + 50 })
        stop.add()
        XCTAssertEqual(group.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(failures.value, 0, "no valid token failed during the rotations")
        XCTAssertGreaterThan(served.value, 100)
        // Retire the original verify key: its tokens are refused within the watcher's poll.
        XCTAssertEqual(try GatewayBinary.run(["keys", "retire", "--keys", keysPath, "old"]).status, 0)
        XCTAssertTrue(waitUntil(seconds: 10) { (try? gw.get("/api/v3/x", headers: "Authorization: Bearer \(old)\r\n").status) == 401 })
        XCTAssertEqual(try gw.get("/api/v3/x", headers: "Authorization: Bearer \(before)\r\n").status, 200, "cur still verifies")
        XCTAssertTrue(gw.log.contains("a change of the keys file"), gw.log)
    }

    func testReloadingAnInvalidConfigurationUnderLoadChangesNothing() throws {
        let gw = try GatewayHarness(workers: 2)
        let token = gw.token()
        let failures = Locked(0), served = Locked(0), stop = Locked(0)
        let group = DispatchGroup()
        let port = gw.port
        for _ in 0..<3 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let c = try? RawClient(port: port, timeout: 5) else { failures.add(); return }
                while stop.value == 0 {
                    guard (try? c.send("GET /api/v3/l HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n\r\n")) != nil,
                          let r = try? c.readResponse() else { failures.add(); return }
                    if r.status == 200 { served.add() } else { failures.add() }
                }
            }
        }
        let original = try String(contentsOfFile: gw.configPath, encoding: .utf8)
        for (n, broken) in ["[server\n", original + "\n[server]\nlisten = 3\n", original.replacingOccurrences(of: "/api/v3/", with: "no-slash")].enumerated() {
            try broken.write(toFile: gw.configPath, atomically: true, encoding: .utf8)
            gw.signal(SIGHUP)
            XCTAssertTrue(waitUntil(seconds: 10) { gw.log.components(separatedBy: "reload refused").count - 1 == n + 1 })
        }
        stop.add()
        XCTAssertEqual(group.wait(timeout: .now() + 15), .success)
        XCTAssertEqual(failures.value, 0)
        XCTAssertGreaterThan(served.value, 50)
        XCTAssertEqual(gw.log.components(separatedBy: "reload refused").count - 1, 3, gw.log)
    }

    func testAnInvalidKeysFileIsRefusedAndTheOldRingStays() throws {
        let gw = try GatewayHarness()
        try "{\"keys\":[]}".write(toFile: gw.dir.path("keys.json"), atomically: true, encoding: .utf8)
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("reload refused") }, gw.log)
        XCTAssertEqual(try gw.get("/api/v3/x", headers: gw.bearer).status, 200)
        XCTAssertTrue(gw.log.contains("reload refused"), gw.log)
    }

    func testAVerifyKeyPastTheLongestTokenLifetimeIsRetiredAutomatically() throws {
        let gw = try GatewayHarness()
        var keys = gw.ring.keys
        keys[0].deactivatedAt = Int64(Date().timeIntervalSince1970) - 3 * 86_400  // "old": 3 days ago, refresh lifetime 24 h
        try KeyRing(keys: keys).jwkSetText().write(toFile: gw.dir.path("keys.json"), atomically: true, encoding: .utf8)
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("retired automatically") }, gw.log)
        let old = try token(gw.ring, kid: "old")
        XCTAssertEqual(try gw.get("/api/v3/x", headers: "Authorization: Bearer \(old)\r\n").status, 401)
        XCTAssertTrue(gw.log.contains("retired automatically"), gw.log)
        XCTAssertEqual(try gw.get("/api/v3/x", headers: gw.bearer).status, 200)
    }
}

/// Scheduled rotation, with two gateways sharing one keys file.
final class ScheduledRotationTests: XCTestCase {
    func testTwoGatewaysOnOneKeysFileRotateItExactlyOnce() throws {
        let first = try GatewayHarness(settings: "", sections: "")
        let keysPath = first.dir.path("keys.json")
        // Both get rotate_every; the harness's active key was created at time 0, so it is due.
        for gw in [first] {
            let text = try String(contentsOfFile: gw.configPath, encoding: .utf8)
                .replacingOccurrences(of: "[api.auth.jwt]", with: "[api.auth.jwt]\nrotate_every = \"1h\"")
            try text.write(toFile: gw.configPath, atomically: true, encoding: .utf8)
        }
        first.stop()
        let secondPort = try freePort()
        let secondConfig = try String(contentsOfFile: first.configPath, encoding: .utf8)
            .replacingOccurrences(of: "127.0.0.1:\(first.port)", with: "127.0.0.1:\(secondPort)")
            .replacingOccurrences(of: first.dir.path("data"), with: first.dir.path("data2"))
        let secondPath = try first.dir.write("second.conf", secondConfig)
        try first.startDemoUpstream()
        try first.start()
        let second = Process()
        second.executableURL = GatewayBinary.url
        second.arguments = ["run", "--config", secondPath]
        let out = Pipe()
        second.standardOutput = out
        second.standardError = out
        try second.run()
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL); second.waitUntilExit() } }
        try waitForPort(secondPort)
        func keys() -> KeyRing? { (try? String(contentsOfFile: keysPath, encoding: .utf8)).flatMap { try? KeyRing.fromJWKSet($0) } }
        XCTAssertTrue(waitUntil(seconds: 10) { (keys()?.keys.count ?? 0) >= 3 }, "rotated")
        let ring = try XCTUnwrap(keys())
        // Both gateways accept tokens of the new key once they have reloaded the rotated file;
        // from then on each sees a young active key, so neither rotates again.
        let newToken = try TokenIssuer(settings: IssuerSettings()).issue(subject: "s", use: .access, ring: ring,
                                                                         now: Int64(Date().timeIntervalSince1970)).token
        func status(_ port: UInt16) -> Int? {
            guard let c = try? RawClient(port: port) else { return nil }
            guard (try? c.send("GET /api/v3/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(newToken)\r\n\r\n")) != nil else { return nil }
            return try? c.readResponse().status
        }
        XCTAssertTrue(waitUntil(seconds: 10) { status(first.port) == 200 && status(secondPort) == 200 })
        let after = try XCTUnwrap(keys())
        XCTAssertEqual(after.keys.count, 3, "exactly one rotation: \(after.keys.map { "\($0.kid):\($0.state)" })")
        XCTAssertEqual(after.keys.first { $0.kid == "cur" }?.state, .verify)
    }
}
