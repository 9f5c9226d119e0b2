import XCTest
@testable import TokenCore

final class JSONTapeTests: XCTestCase {
    func parse(_ text: String, limits: JSONLimits = .document) throws -> JSONValue {
        try JSONValue.parse(Array(text.utf8), limits: limits)
    }

    func assertRefused(_ text: String, _ expected: JSONError? = nil, limits: JSONLimits = .document,
                       file: StaticString = #filePath, line: UInt = #line) {
        do {
            let v = try parse(text, limits: limits)
            XCTFail("accepted \(text.debugDescription) as \(v)", file: file, line: line)
        } catch {
            if let expected { XCTAssertEqual(error as? JSONError, expected, text.debugDescription, file: file, line: line) }
        }
    }

    func testParsesObjectsArraysAndScalars() throws {
        let v = try parse(#" { "a" : [1, -2.5e3, true, false, null, "x"], "b": {} } "#)
        XCTAssertEqual(v, .object([
            ("a", .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null, .string("x")])),
            ("b", .object([])),
        ]))
    }

    func testDuplicateKeysAreRefusedEvenWhenEscapedDifferently() {
        assertRefused(#"{"a":1,"a":2}"#, .duplicateKey(offset: 8))
        assertRefused(#"{"sub":"x","s\u0075b":"y"}"#)
        assertRefused(#"{"x":{"k":1,"k":1}}"#)
        XCTAssertNoThrow(try parse(#"{"a":1,"b":{"a":2}}"#))
    }

    func testDepthIsBounded() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        assertRefused(deep, .tooDeep)
        XCTAssertNoThrow(try parse(String(repeating: "[", count: 8) + String(repeating: "]", count: 8), limits: .token))
        assertRefused(String(repeating: "[", count: 9) + String(repeating: "]", count: 9), .tooDeep, limits: .token)
    }

    func testSizeAndValueCountAreBounded() {
        assertRefused("\"" + String(repeating: "a", count: 9000) + "\"", .tooLarge, limits: .token)
        let many = "[" + Array(repeating: "1", count: 300).joined(separator: ",") + "]"
        assertRefused(many, .tooManyValues, limits: .token)
    }

    func testEscapesDecode() throws {
        let v = try parse(#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#)
        XCTAssertEqual(v, .string("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{1F600}"))
    }

    func testInvalidEscapesAndLoneSurrogatesAreRefused() {
        assertRefused(#""\x""#)
        assertRefused(#""\u12""#)
        assertRefused(#""\u12G4""#)
        assertRefused(#""\ud83d""#)
        assertRefused(#""\ud83dx""#)
        assertRefused(#""\ude00""#)
        assertRefused(#""\ud83d\u0041""#)
    }

    func testControlCharactersInStringsAreRefused() {
        assertRefused("\"a\u{1}b\"")
        assertRefused("\"a\nb\"")
        assertRefused("\"a\tb\"")
    }

    func testInvalidUTF8IsRefused() {
        let cases: [[UInt8]] = [
            [0x22, 0xC0, 0xAF, 0x22],             // overlong "/"
            [0x22, 0xE0, 0x80, 0xAF, 0x22],       // overlong
            [0x22, 0xED, 0xA0, 0x80, 0x22],       // encoded surrogate
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], // above U+10FFFF
            [0x22, 0x80, 0x22],                   // lone continuation
            [0x22, 0xE2, 0x82, 0x22],             // truncated sequence
            [0x22, 0xFF, 0x22],
        ]
        for bytes in cases {
            XCTAssertThrowsError(try JSONValue.parse(bytes), "\(bytes)")
        }
        XCTAssertEqual(try JSONValue.parse([0x22, 0xE2, 0x82, 0xAC, 0x22]), .string("\u{20AC}"))
    }

    func testNumbersFollowTheGrammar() {
        for bad in ["01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.2.3", "NaN", "Infinity", "-01"] {
            assertRefused(bad)
        }
        for good in ["0", "-0", "1.5", "1e10", "1E-2", "-12.5e+3"] {
            XCTAssertNoThrow(try parse(good), good)
        }
    }

    func testHugeIntegersAreExactOrRefusedNeverRounded() throws {
        let tape = JSONTape()
        let text = Array("[9223372036854775807, 9223372036854775808, -9223372036854775808, 1.0, 1e3, 17000000000000001]".utf8)
        try tape.parse(text, limits: .document)
        text.withUnsafeBytes { raw in
            XCTAssertEqual(JSONText.int64(tape[1], in: raw), Int64.max)
            XCTAssertNil(JSONText.int64(tape[2], in: raw))
            XCTAssertEqual(JSONText.int64(tape[3], in: raw), Int64.min)
            XCTAssertNil(JSONText.int64(tape[4], in: raw))
            XCTAssertNil(JSONText.int64(tape[5], in: raw))
            XCTAssertEqual(JSONText.int64(tape[6], in: raw), 17_000_000_000_000_001)
        }
    }

    func testTruncatedInputIsRefused() {
        for bad in ["", "{", "{\"a\"", "{\"a\":", "{\"a\":1", "[1,", "\"abc", "tru", "nul", "{\"a\":1,}", "[1,]"] {
            assertRefused(bad)
        }
    }

    func testTrailingDataIsRefused() {
        assertRefused("{} {}")
        assertRefused("1 2")
        assertRefused("{}x")
    }

    func testTapeIsReusableAcrossParses() throws {
        let tape = JSONTape(capacity: 8)
        try tape.parse(Array("[1,2,3,4,5,6,7,8,9,10,11,12]".utf8), limits: .document)
        XCTAssertEqual(tape.count, 13)
        try tape.parse(Array("{\"a\":1}".utf8), limits: .document)
        XCTAssertEqual(tape.count, 3)
        XCTAssertEqual(tape[0].kind, .object)
    }

    func testWriterEscapesWhatJSONRequires() throws {
        var w = JSONWriter()
        w.string("q\"b\\n\n\u{1}\u{7f}é")
        let text = String(decoding: w.bytes, as: UTF8.self)
        XCTAssertEqual(text, #""q\"b\\n\n\u0001\u007fé""#)
        XCTAssertEqual(try JSONValue.parse(w.bytes), .string("q\"b\\n\n\u{1}\u{7f}é"))
    }
}
