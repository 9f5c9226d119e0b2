import XCTest
@testable import TokenCore

final class Base64URLTests: XCTestCase {
    func testRFC4648VectorsRoundTripWithoutPadding() {
        let vectors: [(String, String)] = [
            ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
        ]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64URL.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64URL.decode(encoded), Array(plain.utf8))
        }
    }

    func testURLAlphabetIsUsedAndStandardAlphabetRefused() {
        XCTAssertEqual(Base64URL.encode([0xFB, 0xFF]), "-_8")
        XCTAssertEqual(Base64URL.decode("-_8"), [0xFB, 0xFF])
        XCTAssertNil(Base64URL.decode("+/8"))
    }

    func testPaddingAndForeignCharactersAreRefused() {
        XCTAssertNil(Base64URL.decode("Zg=="))
        XCTAssertNil(Base64URL.decode("Zm8="))
        XCTAssertNil(Base64URL.decode("Zm9v Yg"))
        XCTAssertNil(Base64URL.decode("Zm9v\nYg"))
        XCTAssertNil(Base64URL.decode("Zm9*"))
        XCTAssertNil(Base64URL.decode("Zm9vY\u{e9}"))
    }

    func testDanglingSingleCharacterIsRefused() {
        XCTAssertNil(Base64URL.decode("Z"))
        XCTAssertNil(Base64URL.decode("Zm9vY"))
    }

    func testNonCanonicalTrailingBitsAreRefused() {
        // "Zg" is canonical for "f"; "Zh" carries the same byte with non-zero spare bits.
        XCTAssertNotNil(Base64URL.decode("Zg"))
        XCTAssertNil(Base64URL.decode("Zh"))
        XCTAssertNil(Base64URL.decode("Zm9"))
        XCTAssertNotNil(Base64URL.decode("Zm8"))
    }

    func testRandomBytesRoundTrip() {
        for n in 0..<70 {
            let bytes = Crypto.randomBytes(n)
            let text = Base64URL.encode(bytes)
            XCTAssertEqual(text.count, Base64URL.encodedLength(n))
            XCTAssertFalse(text.contains("="))
            XCTAssertEqual(Base64URL.decode(text), bytes)
        }
    }

    func testDecodeIntoTooSmallBufferFails() {
        let input = Array("Zm9vYmFy".utf8)
        var out = [UInt8](repeating: 0, count: 5)
        let n = input.withUnsafeBytes { i in out.withUnsafeMutableBytes { Base64URL.decode(i, into: $0) } }
        XCTAssertNil(n)
    }
}
