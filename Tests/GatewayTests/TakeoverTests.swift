import Foundation
import Glibc
import XCTest
@testable import Gateway

/// An upgrade under load: `gateway upgrade` starts on the running gateway's listening sockets,
/// the old process drains and exits, and not one request fails meanwhile, whether its client
/// opens a connection per request or keeps one alive.
final class TakeoverTests: XCTestCase {
    /// Clients that keep asking until told to stop; every request that does not get a whole
    /// 200 answer is a failure, with why.
    private final class Load: @unchecked Sendable {
        let served = Locked(0)
        let failures = Locked<[String]>([])
        private let stop = Locked(false)
        private let done = DispatchGroup()

        func start(port: UInt16, token: String, fresh: Int, keepAlive: Int) {
            for i in 0..<(fresh + keepAlive) {
                let keep = i >= fresh
                done.enter()
                Thread.detachNewThread { [self] in
                    defer { done.leave() }
                    var client: RawClient?
                    var n = 0
                    while !stop.value {
                        n += 1
                        do {
                            if client == nil { client = try RawClient(port: port) }
                            try client!.send("GET /api/v3/load/\(i)/\(n) HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer \(token)\r\n\r\n")
                            let r = try client!.readResponse()
                            guard r.status == 200 else { failures.withLock { $0.append("status \(r.status)") }; client = nil; continue }
                            served.add()
                            // A connection the gateway closes after this answer is not reused.
                            if !keep || r.header("connection")?.lowercased() == "close" { client?.close(); client = nil }
                        } catch {
                            failures.withLock { $0.append("client \(i) request \(n) (\(keep ? "keep-alive" : "fresh")): \(error)") }
                            client = nil
                        }
                    }
                }
            }
        }

        func finish() {
            stop.withLock { $0 = true }
            done.wait()
        }
    }

    func testAnUpgradeUnderLoadFailsNoRequestAndTheOldProcessExits() throws {
        let gw = try GatewayHarness(settings: "shutdown_timeout = \"5s\"", workers: 2)
        let load = Load()
        load.start(port: gw.port, token: gw.token(lifetime: 600), fresh: 2, keepAlive: 2)
        defer { load.finish() }
        XCTAssertTrue(waitUntil(seconds: 10) { load.served.value >= 100 })

        let old = try XCTUnwrap(gw.gateway)
        let new = try RunningProgram(GatewayBinary.url, ["upgrade", "--config", gw.configPath], environment: ["PATH": "/usr/bin:/bin"])
        defer {
            if new.isRunning { kill(new.pid, SIGKILL) }
            _ = new.wait(seconds: 10)
        }
        XCTAssertTrue(waitUntil(seconds: 20) { !old.isRunning }, "the old process drained and exited")
        let atHandover = load.served.value
        XCTAssertTrue(waitUntil(seconds: 10) { load.served.value >= atHandover + 200 }, "the new process serves")
        load.finish()
        XCTAssertTrue(new.isRunning)
        XCTAssertEqual(load.failures.value, [], "requests failed during the takeover")
        XCTAssertEqual(old.terminationStatus, 0)
        XCTAssertTrue(gw.log.contains("takeover: a new process serves; draining"), gw.log)
        // The new process answers its admin socket (it took the path over).
        let status = try GatewayBinary.run(["status", "--config", gw.configPath])
        XCTAssertTrue(status.stdout.hasPrefix("ok"), status.stdout + status.stderr)
    }

    func testTheHTTPSListenersAndHTTP2ClientsAreHandedOverToo() throws {
        let gw = try GatewayHarness(tls: true)
        let before = try gw.connectTLS()
        try before.send("GET /api/v3/before HTTP/1.1\r\nHost: gw.test\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try before.readResponse().status, 200)
        // An HTTP/2 client (prior knowledge) that stays connected through the upgrade.
        let h2 = try H2Client.start(port: gw.port, requests: [H2Client.request("/api/v3/h2", headers: [("authorization", "Bearer \(gw.token())")])],
                                    extra: ["then_stay": 15])
        XCTAssertTrue(waitUntil { gw.log.contains("/api/v3/h2") }, "the HTTP/2 client was served before the upgrade")
        let old = try XCTUnwrap(gw.gateway)
        let new = try RunningProgram(GatewayBinary.url, ["upgrade", "--config", gw.configPath], environment: ["PATH": "/usr/bin:/bin"])
        defer {
            if new.isRunning { kill(new.pid, SIGKILL) }
            _ = new.wait(seconds: 10)
        }
        // The kept HTTPS connection's next request is answered, and says it is the last.
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("takeover: a new process serves") }, gw.log)
        try before.send("GET /api/v3/last HTTP/1.1\r\nHost: gw.test\r\n\(gw.bearer)\r\n")
        let last = try before.readResponse()
        XCTAssertEqual(last.status, 200)
        XCTAssertEqual(last.header("connection"), "close")
        let outcome = try h2.wait(seconds: 30)
        XCTAssertEqual(outcome.ordered.first?.status, 200)
        XCTAssertEqual(outcome.goaway, H2Client.noError, "the HTTP/2 connection was told to go (GOAWAY), not cut")
        XCTAssertTrue(waitUntil(seconds: 20) { !old.isRunning }, "the old process drained and exited")
        let after = try gw.connectTLS()
        try after.send("GET /api/v3/after HTTP/1.1\r\nHost: gw.test\r\n\(gw.bearer)\r\n")
        XCTAssertEqual(try after.readResponse().status, 200, "HTTPS served by the new process")
    }

    func testATakeoverWithNoGatewayRunningRefusesToStart() throws {
        let dir = try TempDir()
        let port = try freePort()
        let config = try dir.write("gateway.conf", """
            [server]
            listen = "127.0.0.1:\(port)"
            data_dir = "\(dir.path("data"))"
            [api.auth]
            enable = true
            username = "admin"
            password = "x-password-x"
            """)
        let r = try GatewayBinary.run(["upgrade", "--config", config], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("takeover: no gateway answers on"), r.stderr)
    }

    func testAConfigurationThatDoesNotCheckLeavesTheOldProcessServing() throws {
        let gw = try GatewayHarness()
        let broken = try gw.dir.write("broken.conf", (try String(contentsOfFile: gw.configPath, encoding: .utf8)) + "\n[server]\nnonsense = 1\n")
        let r = try GatewayBinary.run(["upgrade", "--config", broken], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(gw.gateway?.isRunning ?? false)
        XCTAssertEqual(try gw.get("/api/v3/still", headers: gw.bearer).status, 200)
    }

    func testHandedOverListenersAreSharedOutOverTheWorkers() {
        XCTAssertEqual(Takeover.assign(4, workers: 2), [[0, 2], [1, 3]])
        XCTAssertEqual(Takeover.assign(1, workers: 3), [[0], [], []])
        XCTAssertEqual(Takeover.assign(0, workers: 1), [[]])
    }
}
