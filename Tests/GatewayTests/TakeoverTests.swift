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
        let new = try upgrade(gw)
        defer { stop(new) }
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
        let new = try upgrade(gw)
        defer { stop(new) }
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

    /// `gateway upgrade` for `gw`'s configuration, running until `stop`.
    private func upgrade(_ gw: GatewayHarness) throws -> RunningProgram {
        try RunningProgram(GatewayBinary.url, ["upgrade", "--config", gw.configPath], environment: ["PATH": "/usr/bin:/bin"])
    }

    private func stop(_ p: RunningProgram) {
        if p.isRunning { kill(p.pid, SIGKILL) }
        _ = p.wait(seconds: 10)
    }

    /// Speaks the takeover protocol as a new process would, from python (its own pid): asks for
    /// the listeners, says `serving` when told, and exits when told.
    /// `marker`: a file it creates once the listeners have come.
    private func fakeSuccessor(_ adminPath: String, sayServing: Bool, holdSeconds: Double, marker: String = "/dev/null") throws -> RunningProgram {
        let script = """
            import socket, sys, time
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            s.sendall(b"takeover\\n")
            msg, fds, flags, addr = socket.recv_fds(s, 1024, 64)
            print(msg.decode().strip(), len(fds), flush=True)
            open(sys.argv[4], "w").close()
            if sys.argv[2] == "serve":
                s.sendall(b"serving\\n")
                print(s.recv(100).decode().strip(), flush=True)
            time.sleep(float(sys.argv[3]))
            """
        return try RunningProgram(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script, adminPath, sayServing ? "serve" : "hold", String(holdSeconds), marker])
    }

    func testOneTakeoverAtATime() throws {
        let gw = try GatewayHarness()
        let admin = AdminSocket.path(for: try ConfigLoader.load(path: gw.configPath, environment: [:]).config)
        let marker = gw.dir.path("first-has-the-listeners")
        let first = try fakeSuccessor(admin, sayServing: false, holdSeconds: 3, marker: marker)
        XCTAssertTrue(waitUntil { FileManager.default.fileExists(atPath: marker) }, "the first takeover got the listeners")
        let second = try GatewayBinary.run(["upgrade", "--config", gw.configPath], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.contains("a takeover is already under way"), second.stderr)
        let firstOut = first.wait(seconds: 10)
        XCTAssertTrue(firstOut.stdout.hasPrefix("ok plain=1 tls=0 1"), firstOut.stdout + firstOut.stderr)
        XCTAssertEqual(try gw.get("/api/v3/still", headers: gw.bearer).status, 200, "never confirmed: the old one serves on")
    }

    func testWhenTheSuccessorDiesTheOldProcessServesAgain() throws {
        let gw = try GatewayHarness(settings: "shutdown_timeout = \"20s\"")
        let kept = try gw.connect()   // keeps the old process draining (not exited) for a while
        try kept.send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        XCTAssertEqual(try kept.readResponse().status, 200)
        let admin = AdminSocket.path(for: try ConfigLoader.load(path: gw.configPath, environment: [:]).config)
        let successor = try fakeSuccessor(admin, sayServing: true, holdSeconds: 0.5)
        let out = successor.wait(seconds: 10)
        XCTAssertTrue(out.stdout.contains("draining"), out.stdout + out.stderr)
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("is gone; serving again") }, gw.log)
        XCTAssertEqual(try gw.get("/api/v3/back", headers: gw.bearer).status, 200, "the old process accepts again")
        let status = try GatewayBinary.run(["status", "--config", gw.configPath])
        XCTAssertTrue(status.stdout.hasPrefix("ok"), "its admin socket is back: " + status.stdout + status.stderr)
        XCTAssertTrue(gw.gateway?.isRunning ?? false)
    }

    func testListenersOnAnotherAddressThanConfiguredAreRefused() throws {
        let gw = try GatewayHarness()
        let other = try gw.dir.write("wide.conf", (try String(contentsOfFile: gw.configPath, encoding: .utf8))
            .replacingOccurrences(of: "listen = \"127.0.0.1:\(gw.port)\"", with: "listen = \"0.0.0.0:\(gw.port)\""))
        let r = try GatewayBinary.run(["upgrade", "--config", other], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("listens elsewhere"), r.stderr)
        XCTAssertEqual(try gw.get("/api/v3/still", headers: gw.bearer).status, 200)
    }

    func testAnUpgradeWithMetricsOnServesThemFromTheNewProcess() throws {
        let metricsPort = try freePort()
        let gw = try GatewayHarness(sections: "[metrics]\nenable = true\nlisten = \"127.0.0.1:\(metricsPort)\"")
        try waitForPort(metricsPort)
        let old = try XCTUnwrap(gw.gateway)
        let new = try upgrade(gw)
        defer { stop(new) }
        XCTAssertTrue(waitUntil(seconds: 20) { !old.isRunning }, "the old process drained and exited")
        XCTAssertTrue(waitUntil(seconds: 5) {
            guard let c = try? RawClient(port: metricsPort), (try? c.send("GET /metrics HTTP/1.1\r\nHost: p\r\n\r\n")) != nil,
                  let r = try? c.readResponse() else { return false }
            return r.status == 200
        }, "metrics served by the new process")
        XCTAssertTrue(new.isRunning)
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
