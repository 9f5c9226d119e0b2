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

    /// Timing is equalised by construction, not measured: every check computes one hash of each
    /// scheme in use (the user's own, dummies for the rest), whether the name is known, unknown,
    /// disabled, or has a cheaper hash than another user's.
    func testEveryCheckComputesOneHashOfEachSchemeInUseWhoeverAsks() throws {
        let pbkdf2 = try PasswordHasher.hash(Array("bob-pw".utf8), scheme: .pbkdf2SHA256(iterations: 10_000))
        let cheapScrypt = try PasswordHasher.hash(Array("dan-pw".utf8), scheme: .scrypt(logN: 10, r: 8, p: 1))
        let creds = try Credentials(config: config(users: [
            .init(name: "bob", password: pbkdf2), .init(name: "dan", password: cheapScrypt),
            .init(name: "eve", password: pbkdf2, enabled: false),
        ]))
        func schemes(_ name: String) -> [String] {
            creds.hashesChecked(for: creds.entry(named: Array(name.utf8))).map { hash in
                String(describing: try! PasswordHasher.parse(hash).0)
            }.sorted()
        }
        let expected = [PasswordHasher.Scheme.default, .pbkdf2SHA256(iterations: 10_000), .scrypt(logN: 10, r: 8, p: 1)]
            .map { String(describing: $0) }.sorted()
        for name in ["admin", "bob", "dan", "eve", "nobody"] {
            XCTAssertEqual(schemes(name), expected, name)
        }
        XCTAssertEqual(creds.hashesChecked(for: creds.entry(named: Array("bob".utf8))).first, pbkdf2, "the user's own hash decides")
        XCTAssertTrue(creds.check(name: Array("bob".utf8), password: Array("bob-pw".utf8)))
        XCTAssertTrue(creds.check(name: Array("dan".utf8), password: Array("dan-pw".utf8)))
        XCTAssertFalse(creds.check(name: Array("dan".utf8), password: Array("bob-pw".utf8)), "another user's password")
        XCTAssertFalse(creds.check(name: Array("eve".utf8), password: Array("bob-pw".utf8)), "disabled")
        XCTAssertFalse(creds.check(name: Array("nobody".utf8), password: Array("bob-pw".utf8)))
    }

    func testWithOneSchemeInUseEveryCheckIsOneHashOfIt() throws {
        let creds = try Credentials(config: config(users: []))
        XCTAssertEqual(creds.hashesChecked(for: nil).count, 1)
        XCTAssertEqual(creds.hashesChecked(for: creds.entry(named: Array("admin".utf8))).count, 1)
        XCTAssertEqual(try PasswordHasher.parse(creds.hashesChecked(for: nil)[0]).0, .default)
    }

    func testDisabledUserCannotLogInAndIsNotActive() throws {
        let creds = try Credentials(config: config(users: [.init(name: "carol", password: "carol-pw", enabled: false)]))
        XCTAssertFalse(creds.check(name: Array("carol".utf8), password: Array("carol-pw".utf8)))
        XCTAssertFalse(creds.isActive(Array("carol".utf8)))
        XCTAssertTrue(creds.isActive(Array("admin".utf8)))
    }
}
