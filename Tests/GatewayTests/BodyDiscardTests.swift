import XCTest
@testable import Gateway

/// The rest of an answered request's body is dropped under its own framing, within its limit:
/// the bytes after it, and only those, are the next request.
final class BodyDiscardTests: XCTestCase {
    private func drop(_ discard: inout BodyDiscard, _ text: String) -> (BodyDiscard.Outcome, String) {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBytes { raw in
            var buffer = ByteBuffer(base: raw.baseAddress!, capacity: raw.count)
            buffer.writerIndex = raw.count
            let outcome = discard.drop(from: &buffer)
            return (outcome, String(decoding: buffer.readable, as: UTF8.self))
        }
    }

    func testALengthBodyEndsAtItsLengthAcrossReads() {
        var d = BodyDiscard(.length(10), limit: 100)
        XCTAssertEqual(drop(&d, "hello").0, .needMore)
        let (outcome, left) = drop(&d, "worldGET / HTTP/1.1")
        XCTAssertEqual(outcome, .done)
        XCTAssertEqual(left, "GET / HTTP/1.1", "what follows the body is left for the parser")
    }

    func testAChunkedBodyEndsAtItsLastChunkEvenWhenItLooksLikeARequest() {
        var d = BodyDiscard(.chunked(ChunkedDecoder()), limit: 100)
        XCTAssertEqual(drop(&d, "5\r\nGET /").0, .needMore)
        let (outcome, left) = drop(&d, "\r\n0\r\n\r\nNEXT")
        XCTAssertEqual(outcome, .done)
        XCTAssertEqual(left, "NEXT")
    }

    func testMoreThanTheLimitOrBadFramingIsRefused() {
        var big = BodyDiscard(.length(50), alreadySeen: 60, limit: 100)
        XCTAssertEqual(drop(&big, String(repeating: "x", count: 45)).0, .refused)
        var chunked = BodyDiscard(.chunked(ChunkedDecoder()), limit: 4)
        XCTAssertEqual(drop(&chunked, "5\r\nhello\r\n0\r\n\r\n").0, .refused)
        var malformed = BodyDiscard(.chunked(ChunkedDecoder()), limit: 100)
        XCTAssertEqual(drop(&malformed, "zz\r\n").0, .refused)
    }

    func testNoBodyIsDoneAtOnce() {
        var d = BodyDiscard(.none, limit: 0)
        XCTAssertEqual(drop(&d, "GET").0, .done)
    }
}
