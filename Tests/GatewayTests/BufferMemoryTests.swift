import Foundation
import XCTest

/// What a connection costs in buffer memory, read from the running gateway (`gateway status`):
/// a connection holds a 16 KiB buffer while it has bytes to hold, one that must hold a larger head
/// holds a 64 KiB one, a client that stops reading holds a few small buffers, and a closed
/// connection's buffers go back to a free list of bounded size (256 small, 32 large per worker).
final class BufferMemoryTests: XCTestCase {
    static let small = 16_384, large = 65_536
    var gw: GatewayHarness!
    var upstream: RecordingUpstream!

    override func tearDown() {
        gw = nil
        upstream = nil
    }

    private func start(answer: @escaping @Sendable (RecordingUpstream.Request) -> RecordingUpstream.Answer = { .ok("seen \($0.target)") }) throws {
        upstream = try RecordingUpstream(answer: answer)
        gw = try GatewayHarness(settings: "header_timeout = \"60s\"\n[limits]\nheader_bytes = 65536\nrequest_line = 8192", routes: """
            [[route]]
            prefix = "/open/"
            upstream = "http://127.0.0.1:\(upstream.port)"
            auth = "none"
            """, startUpstream: false)
    }

    /// Bytes of buffers in use and on the free lists, as the admin socket reports them.
    private func buffers() throws -> (inUse: Int, pooled: Int) {
        let r = try GatewayBinary.run(["status", "--config", gw.configPath])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        func value(_ key: String) -> Int {
            let field = r.stdout.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix(key + "=") }
            return field.flatMap { Int($0.dropFirst(key.count + 1)) } ?? -1
        }
        return (value("buffer_bytes"), value("pooled_buffer_bytes"))
    }

    private func waitForBuffers(inUse: Int, seconds: Double = 10) throws -> Bool {
        var last = -1
        let reached = waitUntil(seconds: seconds) { last = (try? self.buffers().inUse) ?? -1; return last == inUse }
        if !reached { XCTFail("buffer bytes in use: \(last), expected \(inUse)") }
        return reached
    }

    func testLargeRequestAndAnswerHeadsPassWholeAndTheConnectionGoesOn() throws {
        let big = String(repeating: "a", count: 40_000)
        try start { request in
            request.target == "/open/big" ? .init("HTTP/1.1 200 OK\r\nX-Answer: \(big)\r\nContent-Length: 2\r\n\r\nok") : .ok("seen \(request.target)")
        }
        let c = try gw.connect()
        try c.send("GET /open/big HTTP/1.1\r\nHost: gw\r\nX-Request: \(big)\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("x-answer"), big, "the 40 KB answer field arrived whole")
        XCTAssertEqual(upstream.requests.first?.header("x-request"), big, "the 40 KB request field arrived whole")
        try c.send("GET /open/after HTTP/1.1\r\nHost: gw\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "seen /open/after", "the same connection serves the next request")
        c.close()
        XCTAssertTrue(try waitForBuffers(inUse: 0))
    }

    /// 300 clients that sent part of a head hold one small buffer each; 40 whose partial head is
    /// larger than a small buffer hold one large buffer each. Closed, they leave the free lists at
    /// their bounds, the rest given back to the allocator.
    func testEachConnectionHoldsOneBufferSizedToItsHeadAndClosedOnesGoBackToABoundedPool() throws {
        try start()
        var clients: [RawClient] = []
        for _ in 0..<300 {
            let c = try gw.connect()
            try c.send("GET /open/slow HTTP/1.1\r\nHost: gw\r\n")
            clients.append(c)
        }
        XCTAssertTrue(try waitForBuffers(inUse: 300 * Self.small))
        for c in clients { c.close() }
        clients.removeAll()
        XCTAssertTrue(try waitForBuffers(inUse: 0))
        XCTAssertEqual(try buffers().pooled, 256 * Self.small, "the free list keeps 256 small buffers, no more")

        for _ in 0..<40 {
            let c = try gw.connect()
            try c.send("GET /open/slow HTTP/1.1\r\nHost: gw\r\nX-Big: " + String(repeating: "b", count: 20_000) + "\r\n")
            clients.append(c)
        }
        XCTAssertTrue(try waitForBuffers(inUse: 40 * Self.large), "a head over 16 KiB moved to one 64 KiB buffer")
        for c in clients { c.close() }
        XCTAssertTrue(try waitForBuffers(inUse: 0))
        XCTAssertEqual(try buffers().pooled, 256 * Self.small + 32 * Self.large, "and 32 large ones")
        XCTAssertTrue(upstream.requests.isEmpty)
    }

    /// Clients that ask for a large answer and never read it stall their exchanges; each holds at
    /// most four small buffers (its input and output, the upstream connection's input and output)
    /// however large the answer, the rest waiting in the upstream.
    func testAClientThatDoesNotReadItsAnswerHoldsAtMostFourSmallBuffers() throws {
        let body = String(repeating: "x", count: 8 << 20)
        try start { _ in .ok(body) }
        var clients: [RawClient] = []
        for _ in 0..<10 {
            let c = try gw.connect()
            try c.send("GET /open/large HTTP/1.1\r\nHost: gw\r\n\r\n")
            clients.append(c)
        }
        XCTAssertTrue(upstream.waitFor(seconds: 10) { $0.requests.count == 10 })
        // While the answers stream and once they stall (the socket buffers toward the clients
        // full), the count stays within the bound.
        for _ in 0..<5 {
            let inUse = try buffers().inUse
            XCTAssertGreaterThan(inUse, 0)
            XCTAssertLessThanOrEqual(inUse, 10 * 4 * Self.small)
        }
        clients.removeAll()  // closed with answer bytes unread: a reset, as a client that gives up
        XCTAssertTrue(try waitForBuffers(inUse: 0))
    }
}
