import XCTest
@testable import TokenCore

/// Published vectors (RFC 4231, RFC 7515 appendix A) and one RS256 vector made by pyca/cryptography.
final class CryptoVectorTests: XCTestCase {
    func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        return out
    }

    func mac(_ alg: JWSAlgorithm, key: [UInt8], _ data: [UInt8]) -> String {
        Crypto.hex(HMACContext(algorithm: alg, secret: key)!.mac(data))
    }

    func testRFC4231HMACVectors() {
        let hiThere = Array("Hi There".utf8), key1 = [UInt8](repeating: 0x0b, count: 20)
        XCTAssertEqual(mac(.hs256, key: key1, hiThere), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        XCTAssertEqual(mac(.hs384, key: key1, hiThere), "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6")
        XCTAssertEqual(mac(.hs512, key: key1, hiThere), "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")
        let jefe = Array("Jefe".utf8), what = Array("what do ya want for nothing?".utf8)
        XCTAssertEqual(mac(.hs256, key: jefe, what), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        XCTAssertEqual(mac(.hs384, key: jefe, what), "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        XCTAssertEqual(mac(.hs512, key: jefe, what), "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
        XCTAssertEqual(mac(.hs256, key: [UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50)),
                       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe")
        let bigKey = [UInt8](repeating: 0xaa, count: 131)
        XCTAssertEqual(mac(.hs256, key: bigKey, Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)),
                       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        XCTAssertEqual(mac(.hs256, key: bigKey, Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8)),
                       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2")
    }

    func testHMACContextIsReusableAcrossMessages() {
        let ctx = HMACContext(algorithm: .hs256, secret: Array("Jefe".utf8))!
        let a = ctx.mac(Array("what do ya want for nothing?".utf8))
        _ = ctx.mac(Array("something else entirely".utf8))
        XCTAssertEqual(ctx.mac(Array("what do ya want for nothing?".utf8)), a)
        XCTAssertEqual(Crypto.hex(a), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    static let rfcPayload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"

    func testRFC7515AppendixA1HS256Signature() {
        let key = Base64URL.decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")!
        let signingInput = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + Self.rfcPayload
        let sig = HMACContext(algorithm: .hs256, secret: key)!.mac(Array(signingInput.utf8))
        XCTAssertEqual(Base64URL.encode(sig), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    }

    func verifyPublic(_ key: PublicKey, _ alg: JWSAlgorithm, _ signingInput: String, _ sig: String) -> Bool {
        let data = Array(signingInput.utf8), s = Base64URL.decode(sig)!
        return data.withUnsafeBytes { d in s.withUnsafeBytes { key.verify(alg, data: d, signature: $0) } }
    }

    func testRFC7515AppendixA3ES256SignatureVerifies() {
        let key = PublicKey(curve: "P-256", x: Base64URL.decode("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU")!,
                            y: Base64URL.decode("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")!)!
        let input = "eyJhbGciOiJFUzI1NiJ9." + Self.rfcPayload
        let sig = "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
        XCTAssertTrue(verifyPublic(key, .es256, input, sig))
        XCTAssertFalse(verifyPublic(key, .es256, input + "x", sig))
        XCTAssertFalse(verifyPublic(key, .rs256, input, sig), "an EC key never verifies as RSA")
        XCTAssertFalse(verifyPublic(key, .es256, input, String(sig.dropLast(2))), "a truncated raw signature fails")
    }

    func testPointNotOnCurveIsRefused() {
        XCTAssertNil(PublicKey(curve: "P-256", x: [UInt8](repeating: 1, count: 32), y: [UInt8](repeating: 2, count: 32)))
        XCTAssertNil(PublicKey(curve: "P-521", x: [UInt8](repeating: 1, count: 66), y: [UInt8](repeating: 2, count: 66)))
    }

    static let rsaN = "r5SBg8k1b8FXRet1OfD3O77xqv5dqc2DMwalKaPHXWNPUBlh2O9C0LMtfTKnCtyqiWCubhtzL2o8jF62IANMVFvTXYI3xgYnB_-2WwMABagdGkQEmZnwst8DWqnja_HR79N1sI9m-uFAi9fpzD9-ZIblAPVHfhB2_nymMrk-fAEpAb_Yawgvb-qXMlcm1p-k_bT6BGTDwghfORrsl7MIXbxmSSyJfT0yQ1fAmsEPt67s8OWT7YjU5U3nGmXk_ZCWQBRE_Q5Iyf3OWxJ9-U-TqC3j1VsyCLgz62Lcuw4nr6yhDATkckGA8a64ubgrrP5j2o7M2s3MT7fTNxZWF7I8EQ"
    static let rsaSig = "h-R97oG_dHgaiFIi9t-3RtFTOpFuij-jPw40qa1CgB1HUo8IjPqFEa2QFVbLv4RnNQgXypQoiGXJcv2kr-qyc2ljr1ZFHcfTnKiWnuIFwTsYI0cCX44b11E1EkGrLeLC1T6Z-04KEniBgiSlKtB_xH8ow_yJi6O3WNHh98LLfelq1-YCBVf5L2udgsNxWex0XH_Kb5sgfOdtKnJQjZG7VAYmnps-lAbAdHZoY5VtAL2rtIKiu3FQ8a99-2nIzXP1A5Ok36B2kqqtj1_y822Ws6k-fIl62CNwWjt8tVqhsgUj-NvyOa6MN4TnEfBUHr4oYrJ_EAVbftlnfEuvEwOcHA"
    static let rsaPEM = """
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr5SBg8k1b8FXRet1OfD3
O77xqv5dqc2DMwalKaPHXWNPUBlh2O9C0LMtfTKnCtyqiWCubhtzL2o8jF62IANM
VFvTXYI3xgYnB/+2WwMABagdGkQEmZnwst8DWqnja/HR79N1sI9m+uFAi9fpzD9+
ZIblAPVHfhB2/nymMrk+fAEpAb/Yawgvb+qXMlcm1p+k/bT6BGTDwghfORrsl7MI
XbxmSSyJfT0yQ1fAmsEPt67s8OWT7YjU5U3nGmXk/ZCWQBRE/Q5Iyf3OWxJ9+U+T
qC3j1VsyCLgz62Lcuw4nr6yhDATkckGA8a64ubgrrP5j2o7M2s3MT7fTNxZWF7I8
EQIDAQAB
-----END PUBLIC KEY-----
"""

    func testRS256VerifiesFromJWKComponentsAndFromPEM() {
        let input = "eyJhbGciOiJSUzI1NiJ9." + Self.rfcPayload
        let fromJWK = PublicKey(rsaModulus: Base64URL.decode(Self.rsaN)!, exponent: Base64URL.decode("AQAB")!)!
        XCTAssertEqual(fromJWK.bits, 2048)
        XCTAssertTrue(verifyPublic(fromJWK, .rs256, input, Self.rsaSig))
        XCTAssertFalse(verifyPublic(fromJWK, .rs384, input, Self.rsaSig))
        XCTAssertFalse(verifyPublic(fromJWK, .rs256, input.replacingOccurrences(of: "eyJp", with: "eyJq"), Self.rsaSig))
        let fromPEM = PublicKey(pem: Self.rsaPEM)!
        XCTAssertTrue(verifyPublic(fromPEM, .rs256, input, Self.rsaSig))
        XCTAssertNil(PublicKey(pem: "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"))
    }

    func testUUIDv4HasVersionAndVariantBits() {
        var seen = Set<String>()
        for _ in 0..<200 {
            let u = Array(Crypto.uuidV4())
            XCTAssertEqual(u.count, 36)
            XCTAssertEqual(u[14], "4")
            XCTAssertTrue("89ab".contains(u[19]))
            XCTAssertEqual([u[8], u[13], u[18], u[23]], ["-", "-", "-", "-"])
            seen.insert(String(u))
        }
        XCTAssertEqual(seen.count, 200)
    }

    func testConstantTimeEqualComparesWholeBuffers() {
        XCTAssertTrue(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(Crypto.constantTimeEqual([1, 2, 3], [1, 2]))
        XCTAssertTrue(Crypto.constantTimeEqual([], []))
    }
}
