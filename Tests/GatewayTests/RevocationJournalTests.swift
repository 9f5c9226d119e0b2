import Foundation
import Glibc
import TokenCore
import XCTest
@testable import Gateway

final class RevocationJournalTests: XCTestCase {
    func journal(_ text: String?) throws -> (RevocationJournal, TempDir) {
        let dir = try TempDir()
        let path = dir.path("revocations.journal")
        if let text { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        return (RevocationJournal(path: path), dir)
    }

    func revoked(_ set: RevocationSet, jti: String) -> Bool {
        Array(jti.utf8).withUnsafeBytes { set.isRevoked(jti: $0) }
    }

    func testAppendedRecordsReplayIntoANewSet() throws {
        let (j, dir) = try journal(nil)
        _ = try j.replay(into: RevocationSet(), now: 100)
        try j.append(.jti, Array("token-1".utf8), until: 500)
        try j.append(.sub, Array("alice".utf8), until: 90)
        let set = RevocationSet()
        _ = try RevocationJournal(path: dir.path("revocations.journal")).replay(into: set, now: 100)
        XCTAssertTrue(revoked(set, jti: "token-1"))
        let cut = Array("x".utf8).withUnsafeBytes { j in Array("alice".utf8).withUnsafeBytes { set.check(jti: j, subject: $0, issuedAt: 80) } }
        XCTAssertEqual(cut, .revokedSubject)
    }

    func testMissingAndEmptyFilesStartEmpty() throws {
        let (missing, _) = try journal(nil)
        XCTAssertEqual(try missing.replay(into: RevocationSet(), now: 0), [])
        let (empty, dir) = try journal("")
        defer { _ = dir }
        let set = RevocationSet()
        _ = try empty.replay(into: set, now: 0)
        XCTAssertEqual(set.count, 0)
    }

    func testATornLastRecordIsSkippedNotFatal() throws {
        let good = RevocationJournal.format(.jti, Array("kept".utf8), 1000)
        let torn = String(RevocationJournal.format(.jti, Array("torn".utf8), 1000).dropLast(5))
        let (j, dir) = try journal(RevocationJournal.header + "\n" + good + torn)
        defer { _ = dir }
        let set = RevocationSet()
        let notes = try j.replay(into: set, now: 0)
        XCTAssertTrue(revoked(set, jti: "kept"))
        XCTAssertFalse(revoked(set, jti: "torn"))
        XCTAssertTrue(notes.contains { $0.contains("torn") }, "\(notes)")
    }

    func testALineEndingInCarriageReturnCostsOnlyItselfNotTheRecordAfterIt() throws {
        // Found by FuzzJournal: the file was split into Characters, and "\r\n" is one, so a
        // damaged line ending in CR swallowed the valid record that followed it.
        let good = RevocationJournal.format(.jti, Array("after".utf8), 1000)
        let (j, dir) = try journal(RevocationJournal.header + "\ngarbage\r\n" + good)
        defer { _ = dir }
        let set = RevocationSet()
        let notes = try j.replay(into: set, now: 0)
        XCTAssertTrue(revoked(set, jti: "after"))
        XCTAssertEqual(notes.filter { $0.contains("skipped") }, ["revocation journal: skipped an unreadable record at line 2"])
    }

    func testACorruptedRecordIsSkippedByItsChecksum() throws {
        var line = RevocationJournal.format(.jti, Array("abc".utf8), 1000)
        line = line.replacingOccurrences(of: " 1000 ", with: " 9000 ")
        let (j, dir) = try journal(RevocationJournal.header + "\n" + line)
        defer { _ = dir }
        let set = RevocationSet()
        let notes = try j.replay(into: set, now: 0)
        XCTAssertEqual(set.count, 0)
        XCTAssertTrue(notes.contains { $0.contains("unreadable") }, "\(notes)")
    }

    func testAJournalOfANewerFormatIsAClearError() throws {
        let (j, dir) = try journal("# gateway revocation journal v2\nsomething\n")
        defer { _ = dir }
        XCTAssertThrowsError(try j.replay(into: RevocationSet(), now: 0)) { error in
            XCTAssertTrue("\(error)".contains("newer format"), "\(error)")
        }
        let (other, dir2) = try journal("hello\n")
        defer { _ = dir2 }
        XCTAssertThrowsError(try other.replay(into: RevocationSet(), now: 0))
    }

    func testCompactionWhileRunningKeepsLiveRecordsAndAppendsGoOn() throws {
        let dir = try TempDir()
        let j = RevocationJournal(path: dir.path("revocations.journal"), compactEvery: 10)
        _ = try j.replay(into: RevocationSet(), now: 100)
        let now = Int64(Date().timeIntervalSince1970)
        for i in 0..<9 { try j.append(.jti, Array("gone-\(i)".utf8), until: now - 10) }
        try j.append(.jti, Array("live".utf8), until: now + 1000)  // the 10th append compacts
        try j.append(.jti, Array("after".utf8), until: now + 1000)
        let set = RevocationSet()
        _ = try RevocationJournal(path: dir.path("revocations.journal")).replay(into: set, now: now)
        XCTAssertTrue(revoked(set, jti: "live"))
        XCTAssertTrue(revoked(set, jti: "after"), "appends continue into the rewritten file")
        let text = try String(contentsOfFile: dir.path("revocations.journal"), encoding: .utf8)
        XCTAssertFalse(text.contains(Base64URL.encode(Array("gone-3".utf8))))
    }

    func testCompactionDropsExpiredRecords() throws {
        let text = RevocationJournal.header + "\n" + RevocationJournal.format(.jti, Array("old".utf8), 10)
            + RevocationJournal.format(.jti, Array("live".utf8), 1000)
        let (j, dir) = try journal(text)
        _ = try j.replay(into: RevocationSet(), now: 100)
        let after = try String(contentsOfFile: dir.path("revocations.journal"), encoding: .utf8)
        XCTAssertFalse(after.contains(Base64URL.encode(Array("old".utf8)) + " "))
        XCTAssertTrue(after.contains(Base64URL.encode(Array("live".utf8))))
    }
}

/// Logout end to end, across a crash.
final class LogoutTests: XCTestCase {
    func login(_ gw: GatewayHarness) throws -> (access: String, refresh: String) {
        let r = try gw.login(password: "pw")
        XCTAssertEqual(r.status, 200)
        return (r.json?["access_token"] as? String ?? "", r.json?["refresh_token"] as? String ?? "")
    }

    func refresh(_ gw: GatewayHarness, _ token: String) throws -> Int {
        try gw.get("/api/login/refresh", headers: "Authorization: Bearer \(token)\r\n").status
    }

    func testLogoutRevokesTheRefreshTokenAndSurvivesKill9() throws {
        let gw = try GatewayHarness(sections: "[login]\nfailure_delay = 0\n", password: "pw")
        let a = try login(gw), b = try login(gw)
        let r = try gw.request("POST /api/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(a.refresh)\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(r.status, 204)
        XCTAssertEqual(try refresh(gw, a.refresh), 401, "logged out")
        XCTAssertEqual(try refresh(gw, b.refresh), 200, "another login is untouched")
        // kill -9 right after the acknowledgement, then start again on the same data dir.
        kill(gw.gateway!.processIdentifier, SIGKILL)
        gw.gateway!.waitUntilExit()
        try gw.start()
        XCTAssertEqual(try refresh(gw, a.refresh), 401, "still revoked after a crash and restart")
        XCTAssertEqual(try refresh(gw, b.refresh), 200)
    }

    func testWithRevokeAccessOnLogoutTheLoginsAccessTokenDiesAtOnce() throws {
        let off = try GatewayHarness(sections: "[login]\nfailure_delay = 0\n", password: "pw")
        let a = try login(off)
        _ = try off.request("POST /api/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(a.refresh)\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(try off.get("/api/v3/x", headers: "Authorization: Bearer \(a.access)\r\n").status, 200,
                       "by default an access token lives to its short expiry")

        let on = try GatewayHarness(sections: "[login]\nfailure_delay = 0\n", password: "pw")
        let text = try String(contentsOfFile: on.configPath, encoding: .utf8)
            .replacingOccurrences(of: "[api.auth.jwt]", with: "[api.auth.jwt]\nrevoke_access_on_logout = true")
        try text.write(toFile: on.configPath, atomically: true, encoding: .utf8)
        on.signal(SIGHUP)
        XCTAssertTrue(waitUntil(seconds: 10) { on.log.contains("reloaded configuration") }, on.log)
        let b = try login(on), other = try login(on)
        XCTAssertEqual(try on.get("/api/v3/x", headers: "Authorization: Bearer \(b.access)\r\n").status, 200)
        XCTAssertEqual(try on.request("POST /api/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(b.refresh)\r\nContent-Length: 0\r\n\r\n").status, 204)
        XCTAssertEqual(try on.get("/api/v3/x", headers: "Authorization: Bearer \(b.access)\r\n").status, 401, "voided with its login")
        XCTAssertEqual(try on.get("/api/v3/x", headers: "Authorization: Bearer \(other.access)\r\n").status, 200, "another login lives on")
    }

    func testLogoutWithAJSONBodyAndItsErrors() throws {
        let gw = try GatewayHarness(sections: "[login]\nfailure_delay = 0\n", password: "pw")
        let a = try login(gw)
        let body = "{\"refresh_token\":\"\(a.refresh)\"}"
        let r = try gw.request("POST /api/logout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        XCTAssertEqual(r.status, 204)
        XCTAssertEqual(try refresh(gw, a.refresh), 401)
        let again = try gw.request("POST /api/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(a.refresh)\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(again.status, 401, "a revoked token cannot log out again")
        let access = try gw.request("POST /api/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(a.access)\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(access.status, 401, "an access token is not a refresh token")
        XCTAssertEqual(access.json?["details"] as? [String], ["Missing or invalid JWT token"])
    }
}
