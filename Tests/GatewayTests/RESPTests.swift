import XCTest
@testable import Gateway

/// Redis's wire format, read as strictly as a request: every RESP2 and RESP3 type, replies cut
/// anywhere, and the malformed or oversized ones refused.
final class RESPTests: XCTestCase {
    private func parse(_ text: String, _ limits: RESP.Limits = RESP.Limits()) -> RESP.Parse { RESP.parse(Array(text.utf8), limits: limits) }

    private func value(_ text: String) -> RESPValue? {
        if case let .complete(v, consumed) = parse(text), consumed == text.utf8.count { return v }
        return nil
    }

    func testEveryTypeIsRead() {
        XCTAssertEqual(value("+OK\r\n"), .simple("OK"))
        XCTAssertEqual(value("-ERR wrong\r\n"), .error("ERR wrong"))
        XCTAssertEqual(value(":-42\r\n"), .integer(-42))
        XCTAssertEqual(value("$5\r\nhe\r\no\r\n"), .bulk(Array("he\r\no".utf8)), "a bulk may hold CRLF")
        XCTAssertEqual(value("$0\r\n\r\n"), .bulk([]))
        XCTAssertEqual(value("$-1\r\n"), .null)
        XCTAssertEqual(value("*-1\r\n"), .null)
        XCTAssertEqual(value("*2\r\n:1\r\n$1\r\na\r\n"), .array([.integer(1), .bulk([0x61])]))
        XCTAssertEqual(value("_\r\n"), .null)
        XCTAssertEqual(value("#t\r\n"), .boolean(true))
        XCTAssertEqual(value(",1.5e3\r\n"), .double("1.5e3"))
        XCTAssertEqual(value(",-inf\r\n"), .double("-inf"))
        XCTAssertEqual(value("(12345678901234567890123\r\n"), .bigNumber("12345678901234567890123"))
        XCTAssertEqual(value("!3\r\nERR\r\n"), .error("ERR"))
        XCTAssertEqual(value("=8\r\ntxt:some\r\n"), .verbatim(format: "txt", text: Array("some".utf8)))
        XCTAssertEqual(value("%1\r\n+a\r\n:1\r\n"), .map([(.simple("a"), .integer(1))]))
        XCTAssertEqual(value("~2\r\n:1\r\n:2\r\n"), .set([.integer(1), .integer(2)]))
        XCTAssertEqual(value(">2\r\n+message\r\n$1\r\nx\r\n"), .push([.simple("message"), .bulk([0x78])]))
        XCTAssertEqual(value("|1\r\n+ttl\r\n:3\r\n+OK\r\n"), .simple("OK"), "an attribute is passed over")
    }

    func testAReplyCutAnywhereIsIncompleteAndTwoRepliesAreReadOneByOne() {
        let whole = "*3\r\n$3\r\nabc\r\n%1\r\n+k\r\n*1\r\n:7\r\n#f\r\n"
        let bytes = Array(whole.utf8)
        for cut in 0..<bytes.count {
            XCTAssertEqual(RESP.parse(Array(bytes[0..<cut])), .incomplete, "cut at \(cut)")
        }
        guard case let .complete(v, n) = RESP.parse(bytes + Array("+NEXT\r\n".utf8)) else { return XCTFail() }
        XCTAssertEqual(n, bytes.count)
        XCTAssertEqual(v, .array([.bulk(Array("abc".utf8)), .map([(.simple("k"), .array([.integer(7)]))]), .boolean(false)]))
    }

    func testMalformedRepliesAreRefused() {
        let cases = [
            "+OK\n", "+O\rK\r\n", ":12a\r\n", ":+1\r\n", ":\r\n", ":99999999999999999999\r\n", "$-2\r\n", "$3\r\nabcd\r\n",
            "*-2\r\n", "%-1\r\n", "#x\r\n", ",1,5\r\n", "(12a\r\n", "_x\r\n", "=3\r\nabc\r\n", "?\r\n", "$ 3\r\nabc\r\n",
        ]
        for c in cases {
            guard case .malformed = parse(c) else { return XCTFail("accepted \(c.debugDescription): \(parse(c))") }
        }
    }

    func testLimitsAreEnforcedNotTruncated() {
        var limits = RESP.Limits()
        limits.maxBulkBytes = 4
        limits.maxElements = 3
        limits.maxDepth = 2
        limits.maxLineBytes = 16
        guard case .malformed = parse("$5\r\nabcde\r\n", limits) else { return XCTFail("bulk") }
        guard case .malformed = parse("*4\r\n", limits) else { return XCTFail("elements, refused from the length alone") }
        guard case .malformed = parse("*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n", limits) else { return XCTFail("elements over all levels") }
        guard case .malformed = parse("*1\r\n*1\r\n*1\r\n:1\r\n", limits) else { return XCTFail("depth") }
        guard case .malformed = parse("+" + String(repeating: "a", count: 17), limits) else { return XCTFail("a line without its end") }
        guard case .complete = parse("*1\r\n*1\r\n:1\r\n", limits) else { return XCTFail("within the limits") }
    }

    func testACommandIsAnArrayOfBulkStrings() {
        XCTAssertEqual(String(decoding: RESP.command(["SET", "k", "a b"]), as: UTF8.self), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n")
        XCTAssertEqual(RESP.parse(RESP.command(["XADD", "s", "*", "f", ""])),
                       .complete(.array(["XADD", "s", "*", "f", ""].map { .bulk(Array($0.utf8)) }), consumed: RESP.command(["XADD", "s", "*", "f", ""]).count))
    }
}
