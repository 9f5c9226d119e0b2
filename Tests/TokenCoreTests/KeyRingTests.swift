import XCTest
@testable import TokenCore

final class KeyRingTests: XCTestCase {
    let secret32 = Array("0123456789abcdef0123456789abcdef".utf8)

    func testShortSecretIsRefusedWithClearError() {
        XCTAssertThrowsError(try KeyRing.single(secret: Array("too-short".utf8), kid: "a")) { error in
            XCTAssertEqual(error as? KeyRingError, .secretTooShort(kid: "a", bytes: 9, minimum: 32))
            XCTAssertTrue("\(error)".contains("at least 32"))
        }
        XCTAssertThrowsError(try KeyRing.single(secret: secret32, kid: "a", algorithm: .hs512)) { error in
            XCTAssertEqual(error as? KeyRingError, .secretTooShort(kid: "a", bytes: 32, minimum: 64))
        }
    }

    func testDerivedKidIsStableAndDoesNotContainTheSecret() throws {
        let a = try KeyRing.single(secret: secret32), b = try KeyRing.single(secret: secret32)
        XCTAssertEqual(a.activeKey?.kid, b.activeKey?.kid)
        let kid = a.activeKey!.kid
        XCTAssertFalse(kid.contains("0123"))
        XCTAssertEqual(kid.count, 17)
        XCTAssertNotEqual(kid, try KeyRing.single(secret: secret32 + [0x41]).activeKey?.kid)
    }

    func testExactlyOneActiveKeyIsRequired() throws {
        let k1 = try Key(kid: "one", algorithm: .hs256, material: .secret(secret32), state: .active)
        let k2 = try Key(kid: "two", algorithm: .hs256, material: .secret(secret32), state: .active)
        let k3 = try Key(kid: "three", algorithm: .hs256, material: .secret(secret32), state: .verify)
        XCTAssertThrowsError(try KeyRing(keys: [k1, k2])) { XCTAssertEqual($0 as? KeyRingError, .severalActiveKeys(["one", "two"])) }
        XCTAssertThrowsError(try KeyRing(keys: [k3])) { XCTAssertEqual($0 as? KeyRingError, .noActiveKey) }
        XCTAssertEqual(try KeyRing(keys: [k3, k1]).activeIndex, 1)
    }

    func testDuplicateKidIsRefused() throws {
        let k1 = try Key(kid: "same", algorithm: .hs256, material: .secret(secret32), state: .active)
        let k2 = try Key(kid: "same", algorithm: .hs256, material: .secret(secret32), state: .verify)
        XCTAssertThrowsError(try KeyRing(keys: [k1, k2])) { XCTAssertEqual($0 as? KeyRingError, .duplicateKid("same")) }
    }

    func testKidWithControlCharactersIsRefused() {
        XCTAssertThrowsError(try Key(kid: "a\nb", algorithm: .hs256, material: .secret(secret32), state: .active))
        XCTAssertThrowsError(try Key(kid: "", algorithm: .hs256, material: .secret(secret32), state: .active))
    }

    func testSecretKeyCannotBePinnedToAnAsymmetricAlgorithm() {
        XCTAssertThrowsError(try Key(kid: "x", algorithm: .rs256, material: .secret(secret32), state: .active))
    }

    func testJWKSetRoundTripsStatesTimesAndSecrets() throws {
        let ring = try KeyRing(keys: [
            Key(kid: "old", algorithm: .hs256, material: .secret(secret32), state: .verify, createdAt: 100, deactivatedAt: 200),
            Key(kid: "new", algorithm: .hs384, material: .secret(Crypto.randomBytes(48)), state: .active, createdAt: 200),
            Key(kid: "gone", algorithm: .hs256, material: .secret(Crypto.randomBytes(32)), state: .retired, createdAt: 50),
        ])
        let back = try KeyRing.fromJWKSet(ring.jwkSetText())
        XCTAssertEqual(back.keys.map(\.kid), ["old", "new", "gone"])
        XCTAssertEqual(back.keys.map(\.state), [.verify, .active, .retired])
        XCTAssertEqual(back.keys.map(\.algorithm), [.hs256, .hs384, .hs256])
        XCTAssertEqual(back.keys.map(\.createdAt), [100, 200, 50])
        XCTAssertEqual(back.keys[0].deactivatedAt, 200)
        XCTAssertEqual(back.keys.map(\.secret), ring.keys.map(\.secret))
    }

    func testJWKSetWithOneSecretKeyAndNoStateMakesItActive() throws {
        let k = Base64URL.encode(secret32)
        let ring = try KeyRing.fromJWKSet(#"{"keys":[{"kty":"oct","kid":"only","k":"\#(k)"}]}"#)
        XCTAssertEqual(ring.activeKey?.kid, "only")
        XCTAssertEqual(ring.activeKey?.algorithm, .hs256)
    }

    func testJWKSetErrorsNameTheKey() {
        let k = Base64URL.encode(secret32)
        let cases: [(String, String)] = [
            (#"{"keys":[{"kty":"oct","k":"\#(k)"}]}"#, "missing \"kid\""),
            (#"{"keys":[{"kty":"oct","kid":"a","k":"\#(k)=="}]}"#, "base64url"),
            (#"{"keys":[{"kty":"oct","kid":"a","k":"c2hvcnQ"}]}"#, "at least 32"),
            (#"{"keys":[{"kty":"oct","kid":"a","k":"\#(k)","alg":"none"}]}"#, "unsupported \"alg\""),
            (#"{"keys":[{"kty":"oct","kid":"a","k":"\#(k)","state":"on"}]}"#, "\"state\""),
            (#"{"keys":[{"kty":"oct","kid":"a","k":"\#(k)","use":"enc"}]}"#, "\"use\""),
            (#"{"keys":[{"kty":"OKP","kid":"a","x":"\#(k)"}]}"#, "unsupported \"kty\""),
            (#"{"keys":[{"kty":"oct","kid":"a","k":"\#(k)","state":"verify"}]}"#, "no key is active"),
            (#"{"nokeys":[]}"#, "no \"keys\""),
            (#"{"keys":[{"kty":"oct","kid":"a","kid":"b","k":"\#(k)"}]}"#, "invalid JSON"),
            ("not json", "invalid JSON"),
        ]
        for (text, needle) in cases {
            XCTAssertThrowsError(try KeyRing.fromJWKSet(text), text) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(error) should mention \(needle)")
            }
        }
    }

    func testGeneratedKeysAreRandomAndLongEnough() {
        let a = KeyRing.generateKey(now: 1), b = KeyRing.generateKey(now: 1)
        XCTAssertNotEqual(a.kid, b.kid)
        XCTAssertNotEqual(a.secret, b.secret)
        XCTAssertEqual(a.secret?.count, 32)
        XCTAssertEqual(KeyRing.generateKey(now: 1, algorithm: .hs512).secret?.count, 64)
    }
}

final class PasswordHasherTests: XCTestCase {
    let fast = PasswordHasher.Scheme.scrypt(logN: 10, r: 8, p: 1)

    func testScryptHashVerifiesOnlyTheRightPassword() throws {
        let phc = try PasswordHasher.hash(Array("correct horse".utf8), scheme: fast)
        XCTAssertTrue(phc.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        XCTAssertTrue(try PasswordHasher.verify(Array("correct horse".utf8), against: phc))
        XCTAssertFalse(try PasswordHasher.verify(Array("correct horse ".utf8), against: phc))
        XCTAssertFalse(try PasswordHasher.verify([], against: phc))
    }

    func testDefaultSchemeIsScryptN2to15() throws {
        let phc = try PasswordHasher.hash(Array("pw".utf8))
        XCTAssertTrue(phc.hasPrefix("$scrypt$ln=15,r=8,p=1$"), phc)
        XCTAssertTrue(try PasswordHasher.verify(Array("pw".utf8), against: phc))
    }

    func testSaltMakesEveryHashDifferent() throws {
        let a = try PasswordHasher.hash(Array("same".utf8), scheme: fast)
        let b = try PasswordHasher.hash(Array("same".utf8), scheme: fast)
        XCTAssertNotEqual(a, b)
    }

    func testPBKDF2SHA256MatchesAnIndependentImplementation() throws {
        // hashlib.pbkdf2_hmac("sha256", b"password", b"saltsaltsaltsalt", 10000, 32), PHC base64.
        let phc = "$pbkdf2-sha256$i=10000$c2FsdHNhbHRzYWx0c2FsdA$" + "/HBtt7Z/7p0CzRvSN1B+KXrKNskvRts1UWw61zKTFUo"
        XCTAssertTrue(try PasswordHasher.verify(Array("password".utf8), against: phc))
        XCTAssertFalse(try PasswordHasher.verify(Array("Password".utf8), against: phc))
        let mine = try PasswordHasher.hash(Array("pw".utf8), scheme: .pbkdf2SHA256(iterations: 10_000))
        XCTAssertTrue(try PasswordHasher.verify(Array("pw".utf8), against: mine))
    }

    func testMalformedOrOutOfBoundsHashesAreRefused() {
        let salt = "c2FsdHNhbHRzYWx0c2FsdA", hash = "/HBtt7Z/7p0CzRvSN1B+KXrKNskvRts1UWw61zKTFUo"
        for bad in ["", "plaintext", "$scrypt$ln=15,r=8$\(salt)$\(hash)", "$bcrypt$x$\(salt)$\(hash)",
                    "$scrypt$ln=30,r=8,p=1$\(salt)$\(hash)", "$scrypt$ln=4,r=8,p=1$\(salt)$\(hash)",
                    "$pbkdf2-sha256$i=1$\(salt)$\(hash)", "$scrypt$ln=15,r=8,p=1$\(salt)==$\(hash)",
                    "$scrypt$ln=15,ln=15,r=8,p=1$\(salt)$\(hash)"] {
            XCTAssertThrowsError(try PasswordHasher.verify(Array("x".utf8), against: bad), bad)
            XCTAssertFalse(PasswordHasher.isHash(bad), bad)
        }
    }
}
