import XCTest
@testable import Gateway

/// The chunked transfer-coding decoder, fed the way a connection feeds it: bytes arrive in
/// pieces, unconsumed bytes stay at the front of the buffer.
final class ChunkedDecoderTests: XCTestCase {
    private enum Outcome: Equatable { case done, needMore, error }

    /// Runs a decoder over `pieces` as a connection would and returns the decoded body, how it
    /// ended, and the bytes left after the final CRLF (the next pipelined message).
    private func decode(_ pieces: [[UInt8]], maxTrailerBytes: Int = 8192) -> (body: [UInt8], outcome: Outcome, leftover: [UInt8]) {
        var decoder = ChunkedDecoder(maxTrailerBytes: maxTrailerBytes)
        var pending: [UInt8] = []
        var body: [UInt8] = []
        for (index, piece) in pieces.enumerated() {
            pending += piece
            var offset = 0
            loop: while true {
                let (step, next) = pending.withUnsafeBytes { decoder.next($0, from: offset) }
                switch step {
                case .data(let r):
                    XCTAssertGreaterThan(r.count, 0, "empty data piece")
                    XCTAssertGreaterThanOrEqual(r.start, offset)
                    XCTAssertEqual(r.end, next)
                    body += pending[r.start..<r.end]
                    offset = next
                case .needMore:
                    XCTAssertEqual(next, pending.count, "framing bytes are always consumed")
                    pending.removeFirst(next)
                    break loop
                case .done:
                    let rest = Array(pending[next...]) + pieces[(index + 1)...].flatMap { $0 }
                    return (body, .done, rest)
                case .error:
                    return (body, .error, [])
                }
            }
        }
        return (body, .needMore, pending)
    }

    private func decode(_ text: String, maxTrailerBytes: Int = 8192) -> (body: String, outcome: Outcome, leftover: String) {
        let r = decode([Array(text.utf8)], maxTrailerBytes: maxTrailerBytes)
        return (String(decoding: r.body, as: UTF8.self), r.outcome, String(decoding: r.leftover, as: UTF8.self))
    }

    private func assertMalformed(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(decode(text).outcome, .error, text.debugDescription, file: file, line: line)
    }

    private let sample = "5\r\nhello\r\n1;name=value;x\r\n \r\nA\r\n0123456789\r\n10\r\nABCDEFGHIJKLMNOP\r\n0\r\nX-Sum: 1\r\nX-Other:\tb\r\n\r\n"
    private let sampleBody = "hello 0123456789ABCDEFGHIJKLMNOP"

    // MARK: Valid bodies

    func testSimpleBodyIsDecoded() {
        let r = decode("4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n")
        XCTAssertEqual(r.outcome, .done)
        XCTAssertEqual(r.body, "Wikipedia in \r\n\r\nchunks.")
        XCTAssertEqual(r.leftover, "")
    }

    func testEmptyBodyIsJustTheLastChunk() {
        let r = decode("0\r\n\r\n")
        XCTAssertEqual(r.outcome, .done)
        XCTAssertEqual(r.body, "")
    }

    func testDataIsHandedBackAsRangesOfTheCallersBuffer() {
        var decoder = ChunkedDecoder()
        let bytes = Array("3\r\nabc\r\n0\r\n\r\n".utf8)
        bytes.withUnsafeBytes { buf in
            XCTAssertTrue(decoder.next(buf, from: 0) == (.data(ByteRange(start: 3, end: 6)), 6))
            XCTAssertTrue(decoder.next(buf, from: 6) == (.done, bytes.count))
            XCTAssertTrue(decoder.isDone)
            XCTAssertTrue(decoder.next(buf, from: bytes.count) == (.done, bytes.count), "stays done")
        }
    }

    func testExtensionsAndTrailersAreDiscarded() {
        let r = decode(sample)
        XCTAssertEqual(r.outcome, .done)
        XCTAssertEqual(r.body, sampleBody)
        XCTAssertEqual(r.leftover, "")
    }

    func testUppercaseAndLeadingZeroHexSizesAreAccepted() {
        let r = decode("00a\r\n0123456789\r\n0000\r\n\r\n")
        XCTAssertEqual(r.outcome, .done)
        XCTAssertEqual(r.body, "0123456789")
    }

    func testDoneOffsetIsJustAfterTheFinalCRLF() {
        let r = decode("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
        XCTAssertEqual(r.outcome, .done)
        XCTAssertEqual(r.body, "hi")
        XCTAssertEqual(r.leftover, "GET / HTTP/1.1\r\n")
    }

    func testEverySplitPointDecodesTheSameBody() {
        let bytes = Array(sample.utf8)
        for split in 0...bytes.count {
            let r = decode([Array(bytes[..<split]), Array(bytes[split...])])
            XCTAssertEqual(r.outcome, .done, "split at \(split)")
            XCTAssertEqual(String(decoding: r.body, as: UTF8.self), sampleBody, "split at \(split)")
            XCTAssertEqual(r.leftover, [], "split at \(split)")
        }
    }

    func testOneByteAtATimeDecodesTheSameBody() {
        let pieces = Array(sample.utf8).map { [$0] }
        let r = decode(pieces)
        XCTAssertEqual(r.outcome, .done)
        XCTAssertEqual(String(decoding: r.body, as: UTF8.self), sampleBody)
    }

    func testTruncatedBodyNeedsMore() {
        let bytes = Array(sample.utf8)
        for k in 0..<bytes.count {
            XCTAssertEqual(decode([Array(bytes[..<k])]).outcome, .needMore, "prefix of \(k) bytes")
        }
    }

    func testFifteenHexDigitsAreAcceptedAsASize() {
        var decoder = ChunkedDecoder()
        let bytes = Array("fffffffffffffff\r\nab".utf8)
        bytes.withUnsafeBytes { buf in
            XCTAssertTrue(decoder.next(buf, from: 0) == (.data(ByteRange(start: 17, end: 19)), 19))
            XCTAssertTrue(decoder.next(buf, from: 19) == (.needMore, 19))
        }
    }

    // MARK: Malformed framing

    func testBadChunkSizesAreRefused() {
        for size in ["g", "-1", "+1", "0x5", " 5", "5 ", "", "1 ;x", "\t1"] {
            assertMalformed("\(size)\r\nhello\r\n0\r\n\r\n")
        }
    }

    func testSixteenHexDigitsAreRefused() {
        assertMalformed("0000000000000001\r\na\r\n0\r\n\r\n")
        assertMalformed("10000000000000000\r\n")
    }

    func testBareLineFeedsInFramingAreRefused() {
        assertMalformed("5\nhello\r\n0\r\n\r\n")
        assertMalformed("5\r\nhello\n0\r\n\r\n")
        assertMalformed("0\r\n\n")
        assertMalformed("5\r\r\nhello\r\n0\r\n\r\n")
    }

    func testDataNotFollowedByCRLFIsRefused() {
        assertMalformed("5\r\nhelloX\r\n0\r\n\r\n")
        assertMalformed("5\r\nhello world\r\n0\r\n\r\n")
        assertMalformed("5\r\nhello\rX0\r\n\r\n")
    }

    func testExtensionsWithControlBytesOrOverTheLimitAreRefused() {
        assertMalformed("5;a=\u{0}\r\nhello\r\n0\r\n\r\n")
        assertMalformed("5;a=\u{7f}\r\nhello\r\n0\r\n\r\n")
        assertMalformed("5;\(String(repeating: "x", count: 1025))\r\nhello\r\n0\r\n\r\n")
        XCTAssertEqual(decode("5;\(String(repeating: "x", count: 1024))\r\nhello\r\n0\r\n\r\n").outcome, .done)
    }

    func testMalformedTrailerFieldsAreRefused() {
        assertMalformed("0\r\nX-A: 1\r\n folded\r\n\r\n")
        assertMalformed("0\r\nX A: 1\r\n\r\n")
        assertMalformed("0\r\n: 1\r\n\r\n")
        assertMalformed("0\r\nNoColon\r\n\r\n")
        assertMalformed("0\r\nX: a\u{0}b\r\n\r\n")
        assertMalformed("0\r\nX: a\nY: b\r\n\r\n")
    }

    func testTrailerSectionOverItsLimitIsRefused() {
        let trailer = "X-Pad: " + String(repeating: "p", count: 100) + "\r\n"  // 109 bytes, +2 for the end
        XCTAssertEqual(decode("0\r\n" + trailer + "\r\n", maxTrailerBytes: 111).outcome, .done)
        XCTAssertEqual(decode("0\r\n" + trailer + "\r\n", maxTrailerBytes: 110).outcome, .error)
    }

    func testDecoderStaysFailedAfterAnError() {
        var decoder = ChunkedDecoder()
        let bytes = Array("z\r\n0\r\n\r\n".utf8)
        bytes.withUnsafeBytes { buf in
            XCTAssertEqual(decoder.next(buf, from: 0).0, .error)
            XCTAssertEqual(decoder.next(buf, from: 1).0, .error)
        }
    }
}
