import TokenCore
import XCTest

/// An identity provider's JWK Set as the gateway reads it: public signature keys of allowed
/// algorithms by `kid`, everything else passed over and said.
final class IdPKeySetTests: XCTestCase {
    static let n = CryptoVectorTests.rsaN
    static let ecX = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", ecY = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    static let all: Set<JWSAlgorithm> = [.rs256, .rs384, .rs512, .es256, .es384]

    private func parse(_ keys: [String], allowed: Set<JWSAlgorithm> = IdPKeySetTests.all) throws -> IdPKeySet {
        try IdPKeySet.parse(Array(#"{"keys":[\#(keys.joined(separator: ","))]}"#.utf8), allowed: allowed)
    }

    private func rsa(_ kid: String, _ extra: String = "") -> String {
        #"{"kty":"RSA","kid":"\#(kid)","n":"\#(Self.n)","e":"AQAB"\#(extra)}"#
    }

    private func ec(_ kid: String, _ extra: String = "") -> String {
        #"{"kty":"EC","kid":"\#(kid)","crv":"P-256","x":"\#(Self.ecX)","y":"\#(Self.ecY)"\#(extra)}"#
    }

    func testSignatureKeysAreKeptByKidWithTheAlgorithmOfTheKey() throws {
        // Fields a relying party does not use (x5c, x5t, unknown members) are ignored, not followed.
        let set = try parse([rsa("r1", #","use":"sig","alg":"RS256","x5c":["MIIB"],"x5u":"https://evil/","jku":"https://evil/""#),
                             ec("e1"), rsa("r2", #","alg":"RS384","key_ops":["verify"]"#)])
        XCTAssertEqual(set.keys.count, 3, "\(set.skipped)")
        XCTAssertEqual(set.keys["r1"]?.algorithm, .rs256)
        XCTAssertEqual(set.keys["e1"]?.algorithm, .es256, "an EC key's algorithm follows its curve")
        XCTAssertEqual(set.keys["r2"]?.algorithm, .rs384)
        XCTAssertEqual(set.skipped, [])
    }

    func testKeysThatCannotVerifyTheTenantsTokensArePassedOverAndSaid() throws {
        let set = try parse([
            rsa("enc", #","use":"enc""#),
            rsa("ops", #","key_ops":["encrypt"]"#),
            #"{"kty":"oct","kid":"hmac","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}"#,
            #"{"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            rsa("", ""),
            #"{"kty":"RSA","n":"\#(Self.n)","e":"AQAB"}"#,
            rsa("hs", #","alg":"HS256""#),
            rsa("mismatch", #","alg":"ES256""#),
            ec("p384alg", #","alg":"ES384""#),
            rsa("small").replacingOccurrences(of: Self.n, with: Base64URL.encode([0xC0] + [UInt8](repeating: 0x55, count: 126) + [0x01])),
            #"{"kty":"EC","kid":"off","crv":"P-256","x":"\#(Self.ecX)","y":"\#(Self.ecX)"}"#,
            #""not an object""#,
            rsa("kept"),
            rsa("use5", #","use":5"#),
            rsa("algTrue", #","alg":true"#),
            #"{"kty":"RSA","kid":7,"n":"\#(Self.n)","e":"AQAB"}"#,
        ])
        XCTAssertEqual(Array(set.keys.keys), ["kept"])
        XCTAssertEqual(set.skipped, [
            #"key 0: "use" is "enc", not "sig""#,
            #"key 1: "key_ops" does not include "verify""#,
            #"key 2: kty "oct" is not supported"#,
            #"key 3: kty "OKP" is not supported"#,
            #"key 4: no "kid" (a key is chosen by it)"#,
            #"key 5: no "kid" (a key is chosen by it)"#,
            #"key 6: alg "HS256" is not supported"#,
            #"key 7: alg "ES256" does not fit an RSA key"#,
            #"key 8: alg "ES384" does not fit an EC key"#,
            "key 9: an RSA key of 1024 bits (at least 2048 are required)",
            "key 10: not a valid P-256 or P-384 public key",
            "key 11: not an object",
            #"key 13: "use" is not a string"#,
            #"key 14: "alg" is not a string"#,
            #"key 15: no "kid" (a key is chosen by it)"#,
        ])
    }

    func testOnlyAllowedAlgorithmsAreKept() throws {
        let set = try parse([rsa("r"), ec("e")], allowed: [.es256])
        XCTAssertEqual(Array(set.keys.keys), ["e"])
        XCTAssertEqual(set.skipped, ["key 0: alg RS256 is not allowed"])
    }

    func testAKidThatAppearsTwiceIsUsedForNeitherKey() throws {
        let set = try parse([rsa("same"), ec("same"), rsa("same"), ec("other"), rsa("enc-too", #","use":"enc""#), rsa("enc-too")])
        XCTAssertNil(set.keys["same"])
        XCTAssertNil(set.keys["enc-too"], "also when one of its members could not be used anyway")
        XCTAssertNotNil(set.keys["other"])
        XCTAssertEqual(set.skipped, (0..<3).map { #"key \#($0): kid "same" appears more than once; no key is used for it"# } + [
            #"key 4: "use" is "enc", not "sig""#, #"key 5: kid "enc-too" appears more than once; no key is used for it"#,
        ])
    }

    func testADocumentThatIsNoKeySetIsRefusedWhole() {
        for text in ["", "[]", #"{"keys":{}}"#, #"{"key":[]}"#, "{\"keys\":[" + String(repeating: "{},", count: 64) + "{}]}"] {
            XCTAssertThrowsError(try IdPKeySet.parse(Array(text.utf8), allowed: Self.all), text)
        }
        XCTAssertEqual(try IdPKeySet.parse(Array(#"{"keys":[]}"#.utf8), allowed: Self.all).keys.count, 0)
    }
}
