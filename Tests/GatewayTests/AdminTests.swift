import Foundation
import Glibc
import TokenCore
import XCTest
@testable import Gateway

/// The admin socket and the verbs that use it; readiness.
final class AdminTests: XCTestCase {
    /// Statuses of `count` requests on fresh connections (spread over the workers).
    func statuses(_ gw: GatewayHarness, _ token: String, count: Int = 8) throws -> Set<Int> {
        var seen = Set<Int>()
        for _ in 0..<count { seen.insert(try gw.get("/api/v3/x", headers: "Authorization: Bearer \(token)\r\n").status) }
        return seen
    }

    func testRevokeByUserReachesEveryWorkerWithinASecondAndSurvivesKill9() throws {
        let gw = try GatewayHarness(workers: 2)
        let alice = gw.token(sub: "alice"), bob = gw.token(sub: "bob")
        XCTAssertEqual(try statuses(gw, alice), [200])
        let r = try GatewayBinary.run(["revoke", "--config", gw.configPath, "--user", "alice"])
        let revokedAt = Int64(Date().timeIntervalSince1970)  // at or after the cut-off the command chose
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("ok"), r.stdout)
        XCTAssertEqual(try statuses(gw, alice), [401], "refused in every worker once acknowledged")
        XCTAssertEqual(try statuses(gw, bob), [200], "other users untouched")
        kill(gw.gateway!.processIdentifier, SIGKILL)
        gw.gateway!.waitUntilExit()
        try gw.start()
        XCTAssertEqual(try statuses(gw, alice), [401], "still refused after kill -9 and restart")
        // The cut-off is the second of the revocation: a token issued in a later second works.
        XCTAssertTrue(waitUntil(seconds: 3) { Int64(Date().timeIntervalSince1970) > revokedAt })
        XCTAssertEqual(try statuses(gw, gw.token(sub: "alice")), [200], "a token issued after the cut-off works")
    }

    func testRevokeByTokenIDRefusesExactlyThatToken() throws {
        let gw = try GatewayHarness()
        let now = Int64(Date().timeIntervalSince1970)
        let a = try TokenIssuer(settings: IssuerSettings()).issue(subject: "carol", use: .access, ring: gw.ring, now: now)
        let b = gw.token(sub: "carol")
        XCTAssertEqual(try GatewayBinary.run(["revoke", "--config", gw.configPath, "--jti", a.tokenID]).status, 0)
        XCTAssertEqual(try statuses(gw, a.token, count: 2), [401])
        XCTAssertEqual(try statuses(gw, b, count: 2), [200])
        kill(gw.gateway!.processIdentifier, SIGKILL)
        gw.gateway!.waitUntilExit()
        try gw.start()
        XCTAssertEqual(try statuses(gw, a.token, count: 2), [401], "still refused after kill -9")
        XCTAssertEqual(try statuses(gw, b, count: 2), [200])
    }

    func testRevokeWithoutARunningGatewayWritesTheJournalForTheNextStart() throws {
        let gw = try GatewayHarness()
        let dave = gw.token(sub: "dave")
        gw.stop()
        let r = try GatewayBinary.run(["revoke", "--config", gw.configPath, "--user", "dave"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("no gateway is running"), r.stdout)
        try gw.startDemoUpstream()
        try gw.start()
        XCTAssertEqual(try statuses(gw, dave, count: 2), [401])
    }

    func testRevokeWritesNothingWhenTheAdminSocketIsThereButGivesNoAnswer() throws {
        let gw = try GatewayHarness()
        gw.stop()
        // Something holds the admin socket and closes every connection unanswered (a gateway
        // that is stuck, or not this gateway at all).
        let listener = try Socket.listenUnix(gw.dir.path("data/admin.sock"))
        let closer = Thread {
            for _ in 0..<2 {  // the revoke, then the status
                guard let client = try? listener.acceptBlocking() else { return }
                client.close()
            }
        }
        closer.start()
        defer { listener.close() }
        let r = try GatewayBinary.run(["revoke", "--config", gw.configPath, "--user", "erin"])
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertTrue(r.stderr.contains("did not take the revocation (") && r.stderr.contains("); nothing was written"), r.stderr)
        let journal = (try? String(contentsOfFile: gw.dir.path("data/revocations.journal"), encoding: .utf8)) ?? ""
        XCTAssertFalse(journal.contains("erin") || journal.contains(Base64URL.encode(Array("erin".utf8))), journal)
        let status = try GatewayBinary.run(["status", "--config", gw.configPath])
        XCTAssertEqual(status.status, 1)
        XCTAssertTrue(status.stderr.contains("gave no answer"), status.stderr)
    }

    func testReloadThroughTheAdminSocketAndItsMode() throws {
        let gw = try GatewayHarness()
        var st = stat()
        XCTAssertEqual(stat(gw.dir.path("data/admin.sock"), &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let r = try GatewayBinary.run(["reload", "--config", gw.configPath])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("reloaded configuration"), r.stdout)
    }

    /// A client of the admin socket that connects and says nothing delays no one: reload and
    /// revoke are answered beside it, and it is cut once its time to send a line has passed.
    func testASilentAdminClientDelaysNoReloadOrRevokeAndIsCutAtItsTimeout() throws {
        let gw = try GatewayHarness()
        let silent = try unixConnect(gw.dir.path("data/admin.sock"))
        defer { close(silent) }
        let trickle = try unixConnect(gw.dir.path("data/admin.sock"))
        defer { close(trickle) }
        XCTAssertEqual(write(trickle, "rel", 3), 3, "a client that sends part of a line and stops")

        let reload = try GatewayBinary.run(["reload", "--config", gw.configPath], timeout: 10)
        XCTAssertEqual(reload.status, 0, reload.stdout + reload.stderr)
        XCTAssertTrue(reload.stdout.contains("reloaded configuration"), reload.stdout)
        XCTAssertEqual(try GatewayBinary.run(["revoke", "--config", gw.configPath, "--user", "zed"], timeout: 10).status, 0)
        XCTAssertFalse(isReadable(silent), "answered while the silent client is still waiting its turn to time out")

        for fd in [silent, trickle] {
            XCTAssertTrue(waitUntil(seconds: AdminSocketLimits.timeoutSeconds + 5) { self.isReadable(fd) })
            var answer = [UInt8](repeating: 0, count: 256)
            let n = read(fd, &answer, answer.count)
            XCTAssertEqual(String(decoding: answer[0..<max(n, 0)], as: UTF8.self), "error: no command within 5 s\n")
        }
    }

    private enum AdminSocketLimits { static let timeoutSeconds = 5.0 }

    private func isReadable(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }

    private func unixConnect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { close(fd); throw HarnessError("connect \(path): errno \(errno)") }
        return fd
    }

    func testReadyzFollowsTheUpstream() throws {
        let gw = try GatewayHarness()
        XCTAssertTrue(waitUntil(seconds: 6) { (try? gw.get("/readyz").status) == 200 })
        gw.stopUpstream()
        var r = try gw.get("/readyz")
        XCTAssertTrue(waitUntil(seconds: 6) { r = (try? gw.get("/readyz")) ?? r; return r.status == 503 })
        XCTAssertTrue((r.json?["details"] as? [String])?.first?.contains("does not accept connections") ?? false, r.text)
        XCTAssertEqual(try gw.get("/healthz").status, 200, "alive even when not ready")
    }

    /// A command line is taken whole, or ended by the client's orderly close; one cut by a
    /// reset is not run (a shortened name or time would revoke someone else).
    func testACommandCutByAResetIsNotRead() throws {
        let (server, client) = try Socket.pair()
        defer { server.close() }
        XCTAssertTrue(client.sendAll(Array("revoke-user YWxpY2U 1700000000".utf8)))
        // The client leaves unread bytes behind when it closes: its side resets.
        XCTAssertTrue(server.sendAll(Array("unread".utf8)))
        client.close()
        XCTAssertNil(AdminSocket.readLine(server, timeoutMs: 1000))

        let (server2, client2) = try Socket.pair()
        defer { server2.close() }
        XCTAssertTrue(client2.sendAll(Array("status".utf8)))
        client2.close()
        XCTAssertEqual(AdminSocket.readLine(server2, timeoutMs: 1000), Array("status".utf8), "an orderly close ends the line")
    }
}
