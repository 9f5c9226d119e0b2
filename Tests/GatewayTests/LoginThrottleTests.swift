import Foundation
import TokenCore
import XCTest
@testable import Gateway

final class LoginThrottleTests: XCTestCase {
    let a = LoginThrottle.PeerKey(high: 0, low: 1)
    let b = LoginThrottle.PeerKey(high: 0, low: 2)
    let alice = Array("alice".utf8)

    func testAddressIsThrottledAfterItsLimitUntilTheWindowEnds() {
        let t = LoginThrottle(maxPerAddress: 3, maxPerUser: 100, windowMs: 60_000, maxEntries: 1000)
        for i in 0..<3 { XCTAssertNil(t.admit(address: a, user: Array("u\(i)".utf8), now: 1000)) }
        XCTAssertEqual(t.admit(address: a, user: Array("other".utf8), now: 1000), 60)
        XCTAssertEqual(t.admit(address: a, user: Array("other".utf8), now: 31_000), 30)
        XCTAssertNil(t.admit(address: b, user: Array("other".utf8), now: 1000), "another address is not affected")
        XCTAssertNil(t.admit(address: a, user: Array("other".utf8), now: 61_000), "the window ended")
    }

    func testUserIsThrottledAcrossAddressesAndASuccessResetsIt() {
        let t = LoginThrottle(maxPerAddress: 100, maxPerUser: 2, windowMs: 60_000, maxEntries: 1000)
        XCTAssertNil(t.admit(address: a, user: alice, now: 0))
        XCTAssertNil(t.admit(address: b, user: alice, now: 0))
        XCTAssertNotNil(t.admit(address: LoginThrottle.PeerKey(high: 0, low: 3), user: alice, now: 10))
        t.succeeded(address: a, user: alice)
        XCTAssertNil(t.admit(address: a, user: alice, now: 10), "a success clears the user's count")
    }

    func testConcurrentAttemptsAreCountedWhenAdmittedNotWhenChecked() {
        let t = LoginThrottle(maxPerAddress: 5, maxPerUser: 100, windowMs: 60_000, maxEntries: 1000)
        var admitted = 0
        for _ in 0..<12 where t.admit(address: a, user: alice, now: 0) == nil { admitted += 1 }
        XCTAssertEqual(admitted, 5, "no more guesses in flight than the limit")
        t.succeeded(address: a, user: alice)
        XCTAssertNil(t.admit(address: a, user: alice, now: 1), "a success gives its attempt back")
    }

    func testMemoryIsBoundedUnderAFloodOfAddresses() {
        let t = LoginThrottle(maxPerAddress: 5, maxPerUser: 5, windowMs: 60_000, maxEntries: 1000)
        for i in 0..<20_000 {
            _ = t.admit(address: LoginThrottle.PeerKey(high: 0, low: UInt64(i)), user: Array("u\(i % 7)".utf8), now: UInt64(i))
        }
        XCTAssertLessThanOrEqual(t.trackedCount, 1000)
    }
}

final class CredentialsTests: XCTestCase {
    func config(users: [GatewayConfig.User]) -> GatewayConfig {
        var c = GatewayConfig()
        c.auth.username = "admin"
        c.auth.password = "plain-admin-pw"
        c.users = users
        return c
    }

    func testPlaintextAndHashedPasswordsBothCheckAndPlaintextIsHashedAtLoad() throws {
        let hash = try PasswordHasher.hash(Array("bob-pw".utf8), scheme: .scrypt(logN: 10, r: 8, p: 1))
        let creds = try Credentials(config: config(users: [.init(name: "bob", password: hash)]))
        XCTAssertTrue(creds.check(name: Array("admin".utf8), password: Array("plain-admin-pw".utf8)))
        XCTAssertTrue(creds.check(name: Array("bob".utf8), password: Array("bob-pw".utf8)))
        XCTAssertFalse(creds.check(name: Array("bob".utf8), password: Array("admin-pw".utf8)))
        XCTAssertTrue(PasswordHasher.isHash(creds.entry(named: Array("admin".utf8))!.hash), "no plaintext kept in memory")
    }

    func testUnknownUserFailsAfterDoingTheSameWork() throws {
        let creds = try Credentials(config: config(users: []))
        let t0 = Date()
        XCTAssertTrue(creds.check(name: Array("admin".utf8), password: Array("plain-admin-pw".utf8)))
        let known = Date().timeIntervalSince(t0)
        let t1 = Date()
        XCTAssertFalse(creds.check(name: Array("nobody".utf8), password: Array("plain-admin-pw".utf8)))
        let unknown = Date().timeIntervalSince(t1)
        // Both cost a full scrypt (tens of ms); a missing dummy hash would make `unknown` ~0.
        XCTAssertGreaterThan(unknown, known * 0.3)
    }

    func testDisabledUserCannotLogInAndIsNotActive() throws {
        let creds = try Credentials(config: config(users: [.init(name: "carol", password: "carol-pw", enabled: false)]))
        XCTAssertFalse(creds.check(name: Array("carol".utf8), password: Array("carol-pw".utf8)))
        XCTAssertFalse(creds.isActive(Array("carol".utf8)))
        XCTAssertTrue(creds.isActive(Array("admin".utf8)))
    }
}
