import Foundation
import XCTest
@testable import Gateway

/// An HTTP/2 header list written out as the HTTP/1.1 head the strict parser reads, without a
/// socket: what each field becomes, and what is refused.
final class HTTP2RequestHeadTests: XCTestCase {
    private var memory: UnsafeMutableRawPointer!
    private var buffer: ByteBuffer!

    override func setUp() {
        memory = .allocate(byteCount: 65_536, alignment: 16)
        buffer = ByteBuffer(base: memory, capacity: 65_536)
    }

    override func tearDown() { memory.deallocate() }

    private func build(_ fields: [(String, String)], limit: Int = 8192, framing: HTTP2RequestHead.Framing = .asSent,
                       webSocketKey: String = "") -> Result<String, HTTP2RequestHead.Failure> {
        var head = HTTP2RequestHead(limit: limit, pool: nil)
        head.webSocketKey = webSocketKey
        for (name, value) in fields {
            Array(name.utf8).withUnsafeBytes { n in Array(value.utf8).withUnsafeBytes { v in head.add(name: n, value: v, into: &buffer) } }
        }
        return head.finish(framing, into: &buffer).map { range in
            String(decoding: UnsafeRawBufferPointer(start: buffer.base + range.lowerBound, count: range.count), as: UTF8.self)
        }
    }

    private let get: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":authority", "api.example"), (":path", "/api/v3/x?a=1")]

    func testPseudoFieldsBecomeTheRequestLineAndHost() {
        XCTAssertEqual(try build(get + [("accept", "*/*")]).get(),
                       "GET /api/v3/x?a=1 HTTP/1.1\r\nhost: api.example\r\naccept: */*\r\n\r\n")
    }

    func testTheHeadParsesAsTheSameRequest() throws {
        let text = try build(get + [("authorization", "Bearer abc"), ("content-length", "3")]).get()
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 16)
        defer { fields.deallocate() }
        let parsed = Array(text.utf8).withUnsafeBytes { parseRequestHead($0, fields: fields, limits: HTTPLimits()) }
        guard case let .complete(h) = parsed else { return XCTFail("\(parsed)") }
        XCTAssertEqual(h.contentLength, 3)
        XCTAssertEqual(h.authorizationCount, 1)
        XCTAssertNotNil(h.host)
    }

    func testCookieCrumbsAreJoinedIntoOneField() {
        XCTAssertEqual(try build(get + [("cookie", "a=1"), ("x", "y"), ("cookie", "b=2")]).get(),
                       "GET /api/v3/x?a=1 HTTP/1.1\r\nhost: api.example\r\nx: y\r\ncookie: a=1; b=2\r\n\r\n")
    }

    func testAHostThatAgreesWithAuthorityIsNotRepeatedAndOneThatDisagreesIsMalformed() {
        XCTAssertEqual(try build(get + [("host", "API.example")]).get(), "GET /api/v3/x?a=1 HTTP/1.1\r\nhost: api.example\r\n\r\n")
        XCTAssertEqual(build(get + [("host", "other.example")]), .failure(.malformed))
    }

    func testWithoutAuthorityTheHostFieldIsTheHost() {
        XCTAssertEqual(try build([(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "h.example")]).get(),
                       "GET / HTTP/1.1\r\nhost: h.example\r\n\r\n")
    }

    func testAPseudoFieldAfterARegularOneIsMalformed() {
        XCTAssertEqual(build([(":method", "GET"), (":path", "/"), ("a", "b"), (":authority", "x")]), .failure(.malformed))
    }

    func testFramingIsWrittenAsAskedForTheUpstream() {
        XCTAssertEqual(try build(get, framing: .chunked).get(),
                       "GET /api/v3/x?a=1 HTTP/1.1\r\nhost: api.example\r\ntransfer-encoding: chunked\r\n\r\n")
        XCTAssertEqual(try build(get, framing: .length(42)).get(),
                       "GET /api/v3/x?a=1 HTTP/1.1\r\nhost: api.example\r\ncontent-length: 42\r\n\r\n")
    }

    func testAHeadOverTheLimitIsTooLargeWhateverFieldTipsIt() {
        XCTAssertEqual(build(get + [("x-big", String(repeating: "a", count: 300))], limit: 256), .failure(.tooLarge))
        XCTAssertEqual(build(get + [("cookie", String(repeating: "c", count: 300))], limit: 256), .failure(.tooLarge))
        XCTAssertEqual(build([(":method", "GET"), (":path", "/" + String(repeating: "p", count: 300))], limit: 256), .failure(.tooLarge))
        XCTAssertNoThrow(try build(get + [("x-fits", String(repeating: "a", count: 150))], limit: 256).get())
    }

    func testAnExtendedConnectForAWebSocketBecomesHTTP11sUpgrade() {
        let connect: [(String, String)] = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                                           (":path", "/api/v3/ws"), (":authority", "api.example")]
        XCTAssertEqual(try build(connect + [("sec-websocket-version", "13")], webSocketKey: "a2V5a2V5a2V5a2V5a2V5a2==").get(),
                       "GET /api/v3/ws HTTP/1.1\r\nhost: api.example\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
                       + "sec-websocket-key: a2V5a2V5a2V5a2V5a2V5a2==\r\nsec-websocket-version: 13\r\n\r\n")
        XCTAssertEqual(build([(":method", "CONNECT"), (":protocol", "h2c-tunnel"), (":path", "/"), (":authority", "a")]),
                       .failure(.malformed), "only a WebSocket may be opened")
        XCTAssertEqual(build([(":method", "GET"), (":protocol", "websocket"), (":path", "/"), (":authority", "a")]),
                       .failure(.malformed), ":protocol goes with CONNECT only")
    }

    func testTheWebSocketKeyIsRandomPerStream() {
        let keys = Set((0..<50).map { _ in HTTP2RequestHead.newWebSocketKey() })
        XCTAssertEqual(keys.count, 50)
        XCTAssertTrue(keys.allSatisfy { $0.count == 24 && $0.hasSuffix("==") && Data(base64Encoded: $0)?.count == 16 }, "\(keys.first!)")
    }

    /// Every length of :path up to the buffer's end either fits or is refused as too large: the
    /// room for the request line is reckoned to the byte (one short of it once trapped).
    func testNoPathLengthOverrunsTheBuffer() {
        let small = UnsafeMutableRawPointer.allocate(byteCount: 16_384, alignment: 16)
        defer { small.deallocate() }
        for length in stride(from: 16_384 - 200, through: 16_384, by: 1) {
            for authority in [nil, "localhost"] as [String?] {
                var b = ByteBuffer(base: small, capacity: 16_384)
                var head = HTTP2RequestHead(limit: 65_536, pool: nil)
                var fields = [(":method", "GET"), (":scheme", "https")]
                if let authority { fields.append((":authority", authority)) }
                fields.append((":path", "/" + String(repeating: "p", count: (length - 1) / 2)))
                for (name, value) in fields {
                    Array(name.utf8).withUnsafeBytes { n in Array(value.utf8).withUnsafeBytes { v in head.add(name: n, value: v, into: &b) } }
                }
                switch head.finish(.asSent, into: &b) {
                case .success, .failure(.tooLarge): break
                case let other: XCTFail("\(other)")
                }
            }
        }
    }

    func testAClientsOwnWebSocketKeyIsNotForwardedBesideTheGatewaysAndExpectIsNoticed() throws {
        let connect: [(String, String)] = [(":method", "CONNECT"), (":protocol", "websocket"), (":path", "/ws"), (":authority", "a")]
        let text = try build(connect + [("sec-websocket-key", "Y2xpZW50Y2xpZW50Y2xpZW50=="), ("expect", "100-Continue")], webSocketKey: "k").get()
        XCTAssertEqual(text.components(separatedBy: "sec-websocket-key").count - 1, 1, text)
        XCTAssertTrue(text.contains("sec-websocket-key: k\r\n"), text)
    }

    func testThePrefaceIsRecognisedWholeOrInPart() {
        func match(_ s: String) -> HTTP2Preface.Match { Array(s.utf8).withUnsafeBytes { HTTP2Preface.match($0) } }
        XCTAssertEqual(match("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), .whole)
        XCTAssertEqual(match("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\u{12}\u{4}"), .whole, "frames may follow in the same read")
        XCTAssertEqual(match("PRI * HT"), .partial)
        XCTAssertEqual(match("P"), .partial)
        XCTAssertEqual(match("POST / HTTP/1.1\r\n"), .none)
        XCTAssertEqual(match("PRI * HTTP/1.1\r\n"), .none)
    }
}
