import XCTest
@testable import Gateway

/// The head the upstream sees, checked by parsing it back: it is the client's request with the
/// same framing, or it is not written at all.
final class RequestRewriterTests: XCTestCase {
    private let limits = HTTPLimits(requestLineBytes: 8192, headerBytes: 65_536, maxHeaderFields: 100)

    /// Parses `request`, rewrites it into a buffer of `capacity` bytes (already holding
    /// `prefill` bytes), and returns whether it was written plus the buffer's bytes.
    private func rewrite(_ request: String, capacity: Int, prefill: Int = 0, subject: String? = "alice",
                         tunnel: Bool? = nil, strip: StrippedFields = StrippedFields(GatewayConfig.Server().stripRequestFields))
        -> (written: Bool, output: [UInt8], head: RequestHead?) {
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: limits.maxHeaderFields)
        defer { fields.deallocate() }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { memory.deallocate() }
        var out = ByteBuffer(base: memory, capacity: capacity)
        for _ in 0..<prefill { XCTAssertTrue(out.append(byte: UInt8(ascii: "p"))) }
        let bytes = Array(request.utf8)
        let subjectBytes = subject.map { Array($0.utf8) }
        return bytes.withUnsafeBytes { raw in
            guard case let .complete(head) = parseRequestHead(raw, fields: fields, limits: limits) else {
                XCTFail("the test request must parse")
                return (false, [], nil)
            }
            let written = withOptionalBytes(subjectBytes) { subject in
                RequestRewriter.write(
                    .init(buffer: raw, head: head, fields: fields, forwardAuthorization: false, subject: subject,
                          peer: PeerAddress(), tunnel: tunnel ?? head.upgradeWebSocket, strip: strip),
                    into: &out, requestID: { $0.append("req-1") })
            }
            return (written, Array(out.readable), head)
        }
    }

    private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let bytes else { return body(nil) }
        return bytes.withUnsafeBytes { body($0) }
    }

    private func reparse(_ bytes: [UInt8]) -> (RequestParse, [String: [String]]) {
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: limits.maxHeaderFields)
        defer { fields.deallocate() }
        return bytes.withUnsafeBytes { raw in
            let result = parseRequestHead(raw, fields: fields, limits: limits)
            var named: [String: [String]] = [:]
            if case let .complete(head) = result {
                for f in UnsafeBufferPointer(start: fields, count: head.fieldCount) {
                    let name = String(decoding: raw[f.name.start..<f.name.end], as: UTF8.self).lowercased()
                    named[name, default: []].append(String(decoding: raw[f.value.start..<f.value.end], as: UTF8.self))
                }
            }
            return (result, named)
        }
    }

    func testRewrittenHeadReparsesAsTheSameRequestWithTheSameFraming() throws {
        let requests = [
            "GET /api/v3/a?b=c HTTP/1.1\r\nHost: h\r\n\r\n",
            "POST /api/v3/x HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nX-Forwarded-User: mallory\r\n\r\n",
            "POST /api/v3/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n",
            "PUT /api/v3/x HTTP/1.0\r\nHost: h\r\nContent-Length: 0\r\nX_Forwarded_User: mallory\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ]
        for request in requests {
            let r = rewrite(request, capacity: 4096)
            XCTAssertTrue(r.written, request)
            let (parsed, fields) = reparse(r.output)
            guard case let .complete(up) = parsed, let client = r.head else { XCTFail("\(parsed): \(request)"); continue }
            XCTAssertEqual(up.headLength, r.output.count, "nothing after the head: \(request)")
            XCTAssertEqual(up.chunked, client.chunked, request)
            XCTAssertEqual(up.contentLength ?? 0, client.contentLength ?? 0, request)
            XCTAssertEqual(up.upgradeWebSocket, client.upgradeWebSocket, request)
            XCTAssertEqual(fields["x-forwarded-user"], ["alice"], request)
            XCTAssertNil(fields["x_forwarded_user"], request)
            XCTAssertNil(fields["x-drop"], "a field Connection names is hop-by-hop: \(request)")
            XCTAssertEqual(fields["x-forwarded-host"], ["h"], request)
            XCTAssertEqual(fields["x-request-id"], ["req-1"], request)
        }
    }

    /// The hole a property check found: a chunked request whose head nearly fills the buffer lost
    /// its `Transfer-Encoding` line and was sent, so its chunks became another request. At every
    /// capacity the head is either written whole (and still chunked) or not at all.
    func testAHeadThatDoesNotFitIsNeverWrittenInPart() {
        let host = String(repeating: "h", count: 900)
        let request = "POST /api/v3/x HTTP/1.1\r\nHost: \(host)\r\nTransfer-Encoding: chunked\r\nX-Pad: \(host)\r\n\r\n"
        var refused = 0, written = 0
        for capacity in stride(from: 1500, through: 3200, by: 1) {
            for prefill in [0, 7] {
                let r = rewrite(request, capacity: capacity, prefill: prefill)
                if r.written {
                    written += 1
                    guard case let .complete(up) = reparse(Array(r.output.dropFirst(prefill))).0 else {
                        XCTFail("capacity \(capacity): written but does not parse"); continue
                    }
                    XCTAssertTrue(up.chunked, "capacity \(capacity): the framing line is there")
                } else {
                    refused += 1
                    XCTAssertEqual(r.output.count, prefill, "capacity \(capacity): nothing written")
                }
            }
        }
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(written, 0)
    }

    func testUpgradeKeepsAnAnnouncedEmptyBodyFramedAsNone() {
        let r = rewrite("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
                        capacity: 4096)
        let text = String(decoding: r.output, as: UTF8.self)
        XCTAssertTrue(text.contains("Connection: Upgrade\r\n"))
        XCTAssertTrue(text.contains("Upgrade: websocket\r\n"))
        XCTAssertFalse(text.lowercased().contains("transfer-encoding"))
    }

    func testIdentityFieldsOfTheDefaultStripListNeverReachTheUpstreamInAnySpelling() {
        let spoofed = ["X-Remote-User", "remote-user", "X_Auth_Request_User", "X-AUTH-REQUEST-EMAIL", "x-forwarded-email",
                       "X-Forwarded_Groups", "X-Real-IP", "x_real_ip", "Forwarded", "FORWARDED", "Remote_User"]
        let request = "GET /api/v3/a HTTP/1.1\r\nHost: h\r\n" + spoofed.map { "\($0): admin\r\n" }.joined()
            + "X-Remote-Userx: kept\r\n\r\n"
        let r = rewrite(request, capacity: 4096)
        XCTAssertTrue(r.written)
        let (_, fields) = reparse(r.output)
        for name in ["x-remote-user", "remote-user", "x-auth-request-user", "x-auth-request-email", "x-forwarded-email",
                     "x-forwarded-groups", "x_real_ip", "remote_user", "x_auth_request_user", "x-forwarded_groups"] {
            XCTAssertNil(fields[name], name)
        }
        XCTAssertEqual(fields["x-real-ip"], ["0.0.0.0"], "set from the peer, the client's value gone")
        XCTAssertEqual(fields["forwarded"], ["for=0.0.0.0;proto=http"], "set from the peer, the client's value gone")
        XCTAssertEqual(fields["x-remote-userx"], ["kept"], "a longer name is another field")
        XCTAssertFalse(String(decoding: r.output, as: UTF8.self).contains("admin"))
    }

    func testAnIPv6PeerIsQuotedAndBracketedInForwarded() {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.storeBytes(of: sa_family_t(AF_INET6), as: sa_family_t.self)
            raw[8 + 15] = 1  // ::1
        }
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: limits.maxHeaderFields)
        defer { fields.deallocate() }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)
        defer { memory.deallocate() }
        var out = ByteBuffer(base: memory, capacity: 4096)
        Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8).withUnsafeBytes { raw in
            guard case let .complete(head) = parseRequestHead(raw, fields: fields, limits: limits) else { return XCTFail() }
            XCTAssertTrue(RequestRewriter.write(.init(buffer: raw, head: head, fields: fields, forwardAuthorization: false,
                                                      subject: nil, peer: PeerAddress(storage), tunnel: false,
                                                      strip: StrippedFields(["Forwarded", "X-Real-IP"])),
                                                into: &out, requestID: { $0.append("r") }))
        }
        let (_, named) = reparse(Array(out.readable))
        XCTAssertEqual(named["forwarded"], ["for=\"[::1]\";proto=http"])
        XCTAssertEqual(named["x-real-ip"], ["::1"])
    }

    func testAConfiguredListDecidesWhatIsStrippedAndWhatIsSet() {
        let request = "GET /a HTTP/1.1\r\nHost: h\r\nX-Real-IP: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\nX-Tenant: t\r\n"
            + "X-Request-Id: client\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n"
        let none = reparse(rewrite(request, capacity: 4096, strip: StrippedFields([])).output).1
        XCTAssertEqual(none["x-real-ip"], ["10.9.9.9"], "not listed: passed through, not set")
        XCTAssertEqual(none["forwarded"], ["for=10.9.9.9"])
        XCTAssertEqual(none["x-request-id"], ["client"])
        XCTAssertEqual(none["x-forwarded-for"], ["10.1.1.1, 0.0.0.0"])

        let own = reparse(rewrite(request, capacity: 4096, strip: StrippedFields(["x-tenant", "X-Request-Id", "X-Forwarded-For"])).output).1
        XCTAssertNil(own["x-tenant"])
        XCTAssertEqual(own["x-request-id"], ["req-1"], "the client's id replaced by the gateway's")
        XCTAssertEqual(own["x-forwarded-for"], ["0.0.0.0"], "the client's chain dropped, the peer kept")
        XCTAssertEqual(own["x-real-ip"], ["10.9.9.9"])
    }
}
