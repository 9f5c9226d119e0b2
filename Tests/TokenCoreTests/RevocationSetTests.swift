import XCTest
@testable import TokenCore

final class RevocationSetTests: XCTestCase {
    static func check(_ set: RevocationSet, jti: String, sub: String, iat: Int64) -> TokenError? {
        Array(jti.utf8).withUnsafeBytes { j in Array(sub.utf8).withUnsafeBytes { set.check(jti: j, subject: $0, issuedAt: iat) } }
    }

    func testRevokedTokenIDIsRefusedAndOthersPass() {
        let set = RevocationSet()
        XCTAssertNil(Self.check(set, jti: "a", sub: "u", iat: 1))
        set.revoke(jti: Array("a".utf8), until: 100)
        XCTAssertEqual(Self.check(set, jti: "a", sub: "u", iat: 1), .revoked)
        XCTAssertNil(Self.check(set, jti: "b", sub: "u", iat: 1))
        XCTAssertEqual(set.count, 1)
    }

    func testSubjectCutOffVoidsTokensIssuedAtOrBeforeIt() {
        let set = RevocationSet()
        set.revoke(subject: Array("alice".utf8), issuedAtOrBefore: 1000)
        XCTAssertEqual(Self.check(set, jti: "x", sub: "alice", iat: 999), .revokedSubject)
        XCTAssertEqual(Self.check(set, jti: "x", sub: "alice", iat: 1000), .revokedSubject)
        XCTAssertNil(Self.check(set, jti: "x", sub: "alice", iat: 1001))
        XCTAssertNil(Self.check(set, jti: "x", sub: "bob", iat: 10))
        set.revoke(subject: Array("alice".utf8), issuedAtOrBefore: 500)
        XCTAssertEqual(Self.check(set, jti: "x", sub: "alice", iat: 999), .revokedSubject, "an earlier cut-off never shortens a later one")
    }

    func testPurgeDropsOnlyWhatCanNoLongerMatch() {
        let set = RevocationSet()
        set.revoke(jti: Array("old".utf8), until: 100)
        set.revoke(jti: Array("live".utf8), until: 300)
        set.revoke(subject: Array("u".utf8), issuedAtOrBefore: 50)
        XCTAssertEqual(set.purge(now: 200, maxLifetime: 100), 2)
        XCTAssertNil(Self.check(set, jti: "old", sub: "x", iat: 1))
        XCTAssertEqual(Self.check(set, jti: "live", sub: "x", iat: 1), .revoked)
        XCTAssertEqual(set.count, 1)
    }

    func testConcurrentRevokeAndCheckAreSafe() {
        let set = RevocationSet()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in 0..<500 {
                set.revoke(jti: Array("w\(worker)-\(i)".utf8), until: 10_000)
                _ = RevocationSetTests.check(set, jti: "w\(worker)-\(i / 2)", sub: "s", iat: 1)
            }
        }
        XCTAssertEqual(set.count, 4000)
        XCTAssertEqual(Self.check(set, jti: "w3-499", sub: "s", iat: 1), .revoked)
    }
}
