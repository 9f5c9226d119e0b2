import XCTest
@testable import Gateway

/// The HTTP/1.1 head parser: offsets it hands back, every refusal with its exact error, and the
/// byte helpers it is built on.
final class HTTP1ParserTests: XCTestCase {
    // MARK: Helpers

    private func parse(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> (RequestParse, [HeaderField]) {
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: limits.maxHeaderFields)
        defer { fields.deallocate() }
        let result = bytes.withUnsafeBytes { parseRequestHead($0, fields: fields, limits: limits) }
        var count = 0
        if case .complete(let head) = result { count = head.fieldCount }
        return (result, Array(UnsafeBufferPointer(start: fields, count: count)))
    }

    private func parse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> RequestParse {
        parse(Array(text.utf8), limits: limits).0
    }

    private func head(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> RequestHead? {
        let result = parse(text)
        guard case .complete(let head) = result else {
            XCTFail("expected a complete head, got \(result)", file: file, line: line)
            return nil
        }
        return head
    }

    private func assertRefused(_ text: String, _ error: HTTPParseError, limits: HTTPLimits = HTTPLimits(),
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(parse(text, limits: limits), .error(error), file: file, line: line)
    }

    private func parseResponse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> ResponseParse {
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: limits.maxHeaderFields)
        defer { fields.deallocate() }
        return Array(text.utf8).withUnsafeBytes { parseResponseHead($0, fields: fields, limits: limits) }
    }

    private func response(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ResponseHead? {
        let result = parseResponse(text)
        guard case .complete(let head) = result else {
            XCTFail("expected a complete response head, got \(result)", file: file, line: line)
            return nil
        }
        return head
    }

    private func text(_ source: String, _ range: ByteRange?) -> String? {
        guard let range else { return nil }
        return String(decoding: Array(source.utf8)[range.start..<range.end], as: UTF8.self)
    }

    private func withBytes<R>(_ text: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        Array(text.utf8).withUnsafeBytes(body)
    }

    // MARK: Valid requests

    func testSimpleGetHandsBackExactOffsets() {
        let req = "GET /api/v3/items?id=1 HTTP/1.1\r\nHost: gw.example\r\n\r\n"
        guard let h = head(req) else { return }
        XCTAssertEqual(h.method, ByteRange(start: 0, end: 3))
        XCTAssertEqual(h.target, ByteRange(start: 4, end: 22))
        XCTAssertEqual(h.host, ByteRange(start: 39, end: 49))
        XCTAssertEqual(text(req, h.host), "gw.example")
        XCTAssertEqual(h.version, .http11)
        XCTAssertEqual(h.headLength, req.utf8.count)
        XCTAssertEqual(h.fieldCount, 1)
        XCTAssertNil(h.contentLength)
        XCTAssertFalse(h.chunked)
        XCTAssertTrue(h.keepAlive)
        XCTAssertFalse(h.expectContinue)
        XCTAssertNil(h.authorization)
        XCTAssertEqual(h.authorizationCount, 0)
        XCTAssertFalse(h.upgradeWebSocket || h.isHEAD || h.isCONNECT)
    }

    func testPostWithContentLengthAndAuthorizationIsParsed() {
        let body = "{\"username\":\"u\",\"password\":\"p\"}"
        let req = "POST /api/login HTTP/1.1\r\nhost: a:8080\r\nAuthorization:   Bearer abc.def.ghi  \r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        guard let h = head(req) else { return }
        XCTAssertEqual(text(req, h.method), "POST")
        XCTAssertEqual(text(req, h.target), "/api/login")
        XCTAssertEqual(text(req, h.host), "a:8080")
        XCTAssertEqual(text(req, h.authorization), "Bearer abc.def.ghi")
        XCTAssertEqual(h.authorizationCount, 1)
        XCTAssertEqual(h.contentLength, Int64(body.utf8.count))
        XCTAssertEqual(h.fieldCount, 4)
        XCTAssertEqual(h.headLength, req.utf8.count - body.utf8.count)
    }

    func testFieldsAreWrittenWithTrimmedValuesInOrder() {
        let req = "GET / HTTP/1.1\r\nHost:x\r\nX-Empty:\r\nX-Pad: \t v a l \t \r\nX-Obs: caf\u{e9}\r\n\r\n"
        let (result, fields) = parse(Array(req.utf8))
        guard case .complete = result else { return XCTFail("\(result)") }
        XCTAssertEqual(fields.map { text(req, $0.name)! }, ["Host", "X-Empty", "X-Pad", "X-Obs"])
        XCTAssertEqual(fields.map { text(req, $0.value)! }, ["x", "", "v a l", "caf\u{e9}"])
        XCTAssertEqual(fields[1].value.count, 0)
    }

    func testHeaderNamesMatchCaseInsensitively() {
        let req = "GET / HTTP/1.1\r\nhOsT: h\r\ncOnTeNt-LeNgTh: 3\r\nAUTHORIZATION: x\r\n\r\n"
        guard let h = head(req) else { return }
        XCTAssertEqual(text(req, h.host), "h")
        XCTAssertEqual(h.contentLength, 3)
        XCTAssertEqual(text(req, h.authorization), "x")
    }

    func testHTTP10WithoutHostIsAcceptedAndNotKeptAlive() {
        guard let h = head("GET / HTTP/1.0\r\n\r\n") else { return }
        XCTAssertEqual(h.version, .http10)
        XCTAssertNil(h.host)
        XCTAssertFalse(h.keepAlive)
    }

    func testHTTP10KeepAliveTokenTurnsKeepAliveOn() {
        XCTAssertEqual(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")?.keepAlive, true)
        XCTAssertEqual(head("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")?.keepAlive, false)
    }

    func testConnectionCloseTokenAnywhereInTheListTurnsKeepAliveOff() {
        XCTAssertEqual(head("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, ,CLOSE \r\n\r\n")?.keepAlive, false)
        XCTAssertEqual(head("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo\r\nConnection: close\r\n\r\n")?.keepAlive, false)
        XCTAssertEqual(head("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n")?.keepAlive, true)
    }

    func testChunkedRequestIsRecognisedCaseInsensitively() {
        guard let h = head("POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n") else { return }
        XCTAssertTrue(h.chunked)
        XCTAssertNil(h.contentLength)
    }

    func testHeadAndConnectMethodsAreFlaggedCaseSensitively() {
        XCTAssertEqual(head("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")?.isHEAD, true)
        XCTAssertEqual(head("head / HTTP/1.1\r\nHost: h\r\n\r\n")?.isHEAD, false)
        XCTAssertEqual(head("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n")?.isCONNECT, true)
    }

    func testExpectContinueIsCaseInsensitiveAndIgnoredForHTTP10() {
        XCTAssertEqual(head("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")?.expectContinue, true)
        XCTAssertEqual(head("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continuex\r\n\r\n")?.expectContinue, false)
        XCTAssertEqual(head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")?.expectContinue, false)
    }

    func testWebSocketUpgradeNeedsBothUpgradeAndConnectionTokens() {
        XCTAssertEqual(head("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n")?.upgradeWebSocket, true)
        XCTAssertEqual(head("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")?.upgradeWebSocket, false)
        XCTAssertEqual(head("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n")?.upgradeWebSocket, false)
    }

    func testTwoAuthorizationFieldsAreCountedAndNoneIsHandedBack() {
        guard let h = head("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n") else { return }
        XCTAssertEqual(h.authorizationCount, 2)
        XCTAssertNil(h.authorization)
    }

    func testLeadingEmptyLinesAreSkippedAndCountedInHeadLength() {
        let req = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
        guard let h = head(req) else { return }
        XCTAssertEqual(h.method, ByteRange(start: 4, end: 7))
        XCTAssertEqual(h.headLength, req.utf8.count)
        assertRefused(String(repeating: "\r\n", count: 5) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
    }

    func testPipelinedRequestsAreParsedOneHeadAtATime() {
        let first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        let second = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
        let bytes = Array((first + second).utf8)
        let (result, _) = parse(bytes)
        guard case .complete(let h1) = result else { return XCTFail("\(result)") }
        XCTAssertEqual(h1.headLength, first.utf8.count)
        XCTAssertNil(h1.contentLength)
        let (rest, _) = parse(Array(bytes[h1.headLength...]))
        guard case .complete(let h2) = rest else { return XCTFail("\(rest)") }
        XCTAssertEqual(h2.contentLength, 2)
        XCTAssertEqual(h2.headLength, second.utf8.count - 2)
    }

    func testEveryTruncationOfAValidHeadIsIncomplete() {
        let req = Array("\r\nPOST /api/v3/x?y=1 HTTP/1.1\r\nHost: h\r\nX-Pad:  some long value here \r\nContent-Length: 0\r\n\r\n".utf8)
        for k in 0..<req.count {
            XCTAssertEqual(parse(Array(req[..<k])).0, .incomplete, "prefix of \(k) bytes")
        }
        if case .complete = parse(req).0 {} else { XCTFail("whole head") }
    }

    func testObsTextAndTabsInValuesAreAllowed() {
        let bytes: [UInt8] = Array("GET / HTTP/1.1\r\nHost: h\r\nX: a\tb".utf8) + [0x80, 0xFF] + Array("\r\n\r\n".utf8)
        if case .complete = parse(bytes).0 {} else { XCTFail("\(parse(bytes).0)") }
    }

    // MARK: Request line refusals

    func testBareLineFeedInRequestLineIsRefused() {
        assertRefused("GET / HTTP/1.1\nHost: h\r\n\r\n", .badRequest(.bareLineFeed))
        assertRefused("GET /\n", .badRequest(.bareLineFeed))
        assertRefused("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.bareLineFeed))
    }

    func testBareCarriageReturnIsRefused() {
        assertRefused("GET / HTTP/1.1\rHost: h\r\n\r\n", .badRequest(.bareLineFeed))
        assertRefused("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", .badRequest(.bareLineFeed))
        assertRefused("\rGET / HTTP/1.1\r\n", .badRequest(.bareLineFeed))
    }

    func testMalformedRequestLinesAreRefused() {
        assertRefused("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
        assertRefused("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
        assertRefused(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
        assertRefused("GET /\r\n\r\n", .badRequest(.malformedRequestLine))
        assertRefused("GET\r\n\r\n", .badRequest(.malformedRequestLine))
        assertRefused("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
        assertRefused("GET / HTTP/1.10\r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
        assertRefused("GET / HTTP/1\r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
    }

    func testLowercaseProtocolNameIsRefusedAsMalformed() {
        assertRefused("GET / http/1.1\r\nHost: h\r\n\r\n", .badRequest(.malformedRequestLine))
    }

    func testMalformedVersionIsRefusedWithoutWaitingForTheLineEnd() {
        assertRefused("GET / HTTX", .badRequest(.malformedRequestLine))
    }

    func testNonTokenByteInMethodIsRefused() {
        assertRefused("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.invalidMethod))
        assertRefused("G\u{0}ET / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.invalidMethod))
    }

    func testControlOrNonASCIIByteInTargetIsRefused() {
        assertRefused("GET /a\u{7f}b HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.invalidTarget))
        assertRefused("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.invalidTarget))
        assertRefused("GET /caf\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.invalidTarget))
        // Long enough to go through the eight-bytes-at-a-time scan first.
        assertRefused("GET /0123456789abcdef\u{1}0123456789 HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest(.invalidTarget))
    }

    func testOtherHTTPVersionsAreRefusedWith505() {
        assertRefused("GET / HTTP/2.0\r\nHost: h\r\n\r\n", .versionNotSupported)
        assertRefused("GET / HTTP/1.2\r\nHost: h\r\n\r\n", .versionNotSupported)
        assertRefused("GET / HTTP/0.9\r\n\r\n", .versionNotSupported)
        XCTAssertEqual(parse("GET / HTTP/2.0\r\n"), .error(.versionNotSupported))
    }

    func testRequestLineLongerThanTheLimitIsRefusedWith414() {
        let limits = HTTPLimits(requestLineBytes: 64, headerBytes: 1024, maxHeaderFields: 10)
        // "GET " + target + " HTTP/1.1" is 13 + target bytes.
        let fits = "GET /" + String(repeating: "a", count: 50) + " HTTP/1.1"
        XCTAssertEqual(fits.utf8.count, 64)
        if case .complete = parse(fits + "\r\nHost: h\r\n\r\n", limits: limits) {} else { XCTFail("64 bytes fit") }
        assertRefused("GET /" + String(repeating: "a", count: 51) + " HTTP/1.1\r\nHost: h\r\n\r\n", .uriTooLong, limits: limits)
    }

    func testRequestLineOverTheLimitIsRefusedBeforeItsEndArrives() {
        let limits = HTTPLimits(requestLineBytes: 64, headerBytes: 1024, maxHeaderFields: 10)
        let line = "GET /" + String(repeating: "a", count: 50) + " HTTP/1.1"  // 64 bytes: at the limit
        XCTAssertEqual(parse(line, limits: limits), .incomplete)
        XCTAssertEqual(parse(line + "\r", limits: limits), .incomplete)
        XCTAssertEqual(parse(line + "\r\n", limits: limits), .incomplete)
        assertRefused("GET /" + String(repeating: "a", count: 60), .uriTooLong, limits: limits)  // 65 bytes, no end
        assertRefused("GET /" + String(repeating: "a", count: 10_000), .uriTooLong)
    }

    func testRequestLineThatCannotFitInTheHeadLimitIsRefusedWith414() {
        let limits = HTTPLimits(requestLineBytes: 100, headerBytes: 32, maxHeaderFields: 10)
        assertRefused("GET /" + String(repeating: "a", count: 40), .uriTooLong, limits: limits)
        assertRefused("GET /" + String(repeating: "a", count: 40) + " HTTP/1.1\r\nHost: h\r\n\r\n", .uriTooLong, limits: limits)
    }

    /// The verdict on a head never depends on how its bytes were split across reads: every
    /// prefix parses as incomplete or as exactly what the whole head parses as.
    func testVerdictDoesNotDependOnHowTheHeadWasSplit() {
        let long = String(repeating: "a", count: 300)
        let heads = [
            "GET /\(long) HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /\(long.prefix(240)) HTTP/1.1\r\nHost: \(long)\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A: \(long)\r\n\r\n",
            "\r\nGET /\(long.prefix(250)) HTTP/1.1\r\nHost: h\r\n\r\n",
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n",
        ]
        let limitSets = [
            HTTPLimits(requestLineBytes: 256, headerBytes: 256, maxHeaderFields: 10),
            HTTPLimits(requestLineBytes: 256, headerBytes: 257, maxHeaderFields: 10),
            HTTPLimits(requestLineBytes: 256, headerBytes: 258, maxHeaderFields: 10),
            HTTPLimits(requestLineBytes: 260, headerBytes: 300, maxHeaderFields: 10),
            HTTPLimits(requestLineBytes: 400, headerBytes: 280, maxHeaderFields: 10),
            HTTPLimits(requestLineBytes: 1000, headerBytes: 4000, maxHeaderFields: 2),
        ]
        for limits in limitSets {
            for text in heads {
                let bytes = Array(text.utf8)
                let whole = parse(bytes, limits: limits).0
                for n in 0..<bytes.count {
                    let part = parse(Array(bytes[0..<n]), limits: limits).0
                    if part != .incomplete {
                        XCTAssertEqual(part, whole, "\(n) of \(bytes.count) bytes, limits \(limits)")
                        break
                    }
                }
            }
        }
    }

    // MARK: Field line refusals

    func testObsFoldIsRefused() {
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n  two\r\n\r\n", .badRequest(.obsFold))
        assertRefused("GET / HTTP/1.1\r\n\tHost: h\r\n\r\n", .badRequest(.obsFold))
    }

    func testWhitespaceBeforeColonIsRefused() {
        assertRefused("GET / HTTP/1.1\r\nHost :x\r\n\r\n", .badRequest(.spaceBeforeColon))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", .badRequest(.spaceBeforeColon))
    }

    func testInvalidHeaderNamesAreRefused() {
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", .badRequest(.invalidHeaderName))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", .badRequest(.invalidHeaderName))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", .badRequest(.invalidHeaderName))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nX\u{e9}: 1\r\n\r\n", .badRequest(.invalidHeaderName))
    }

    func testNulAndOtherControlBytesInValuesAreRefused() {
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n", .badRequest(.invalidHeaderValue))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{7f}\r\n\r\n", .badRequest(.invalidHeaderValue))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789abcdef\u{1b}0123456789\r\n\r\n", .badRequest(.invalidHeaderValue))
    }

    func testBareLineFeedInFieldLinesIsRefused() {
        assertRefused("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", .badRequest(.bareLineFeed))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\n\n", .badRequest(.bareLineFeed))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\n\r\r", .badRequest(.bareLineFeed))
    }

    func testHeadLongerThanTheLimitIsRefusedWith431() {
        let limits = HTTPLimits(requestLineBytes: 100, headerBytes: 64, maxHeaderFields: 10)
        let base = "GET / HTTP/1.1\r\nHost: h\r\nX: "  // 28 bytes
        let fits = base + String(repeating: "v", count: 32) + "\r\n\r\n"  // 64 bytes
        if case .complete(let h) = parse(fits, limits: limits) { XCTAssertEqual(h.headLength, 64) } else { XCTFail("64 fit") }
        assertRefused(base + String(repeating: "v", count: 33) + "\r\n\r\n", .headersTooLarge, limits: limits)
        // Still incomplete, but already past the limit.
        assertRefused(base + String(repeating: "v", count: 40), .headersTooLarge, limits: limits)
        XCTAssertEqual(parse(base + String(repeating: "v", count: 20), limits: limits), .incomplete)
    }

    func testBodyBytesAfterASmallHeadDoNotCountAgainstTheHeadLimit() {
        let limits = HTTPLimits(requestLineBytes: 100, headerBytes: 64, maxHeaderFields: 10)
        let req = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + String(repeating: "b", count: 100)
        if case .complete(let h) = parse(req, limits: limits) { XCTAssertEqual(h.contentLength, 100) } else { XCTFail() }
    }

    func testHundredFieldsAreAcceptedAndTheHundredAndFirstIsRefusedWith431() {
        let hundred = (0..<99).map { "X-\($0): v\r\n" }.joined()
        if case .complete(let h) = parse("GET / HTTP/1.1\r\nHost: h\r\n" + hundred + "\r\n") {
            XCTAssertEqual(h.fieldCount, 100)
        } else { XCTFail("100 fields") }
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\n" + hundred + "X-Last: v\r\n\r\n", .headersTooLarge)
        // Refused as soon as the 101st line is in, without waiting for the end of the head.
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\n" + hundred + "X-Last: v\r\n", .headersTooLarge)
    }

    // MARK: Host

    func testHTTP11WithoutHostIsRefused() {
        assertRefused("GET / HTTP/1.1\r\nX: y\r\n\r\n", .badRequest(.missingHost))
    }

    func testMoreThanOneHostIsRefused() {
        assertRefused("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", .badRequest(.multipleHosts))
        assertRefused("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", .badRequest(.multipleHosts))
    }

    // MARK: Framing

    func testContentLengthWithTransferEncodingIsRefusedInEitherOrder() {
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                      .badRequest(.contentLengthWithTransferEncoding))
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                      .badRequest(.contentLengthWithTransferEncoding))
    }

    func testDuplicateContentLengthsMustAgree() {
        XCTAssertEqual(head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")?.contentLength, 5)
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .badRequest(.invalidContentLength))
    }

    func testContentLengthMustBePlainDigits() {
        for bad in ["+5", "-5", "5 5", "0x5", "5, 5", "", "5a", "1_000", "\u{663}"] {
            assertRefused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(bad)\r\n\r\n", .badRequest(.invalidContentLength))
        }
    }

    func testContentLengthSurroundingWhitespaceIsTrimmed() {
        XCTAssertEqual(head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  5 \r\n\r\n")?.contentLength, 5)
        XCTAssertEqual(head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\t007\t\r\n\r\n")?.contentLength, 7)
    }

    func testContentLengthAboveTwoToTheSixtySecondIsRefused() {
        XCTAssertEqual(head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387904\r\n\r\n")?.contentLength, 1 << 62)
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387905\r\n\r\n", .badRequest(.invalidContentLength))
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", .badRequest(.invalidContentLength))
    }

    func testTransferEncodingInHTTP10IsRefused() {
        assertRefused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .badRequest(.transferEncodingInHTTP10))
    }

    func testTransferEncodingOtherThanExactlyChunkedIsRefusedWith501() {
        for te in ["gzip, chunked", "chunked, chunked", "identity", "chunked;q=1", "chunked, gzip"] {
            assertRefused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \(te)\r\n\r\n", .notImplemented)
        }
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", .notImplemented)
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .notImplemented)
    }

    func testWebSocketUpgradeWithABodyIsRefused() {
        let upgrade = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        assertRefused(upgrade + "Content-Length: 5\r\n\r\n", .badRequest(.upgradeWithBody))
        assertRefused(upgrade + "Transfer-Encoding: chunked\r\n\r\n", .badRequest(.upgradeWithBody))
        XCTAssertEqual(head(upgrade + "\r\n")?.upgradeWebSocket, true)
        XCTAssertEqual(head(upgrade + "Content-Length: 0\r\n\r\n")?.upgradeWebSocket, true, "an empty body is no body")
        // Another protocol's upgrade is not tunnelled: its body is forwarded framed.
        XCTAssertEqual(head("POST / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\n")?.contentLength, 5)
    }

    func testConnectionNamingMoreOptionsThanTrackedIsRefused() {
        let sixteen = (1...16).map { "x-\($0)" }.joined(separator: ", ")
        XCTAssertNotNil(head("GET / HTTP/1.1\r\nHost: h\r\nConnection: \(sixteen)\r\n\r\n"))
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nConnection: \(sixteen), x-17\r\n\r\n", .badRequest(.tooManyConnectionOptions))
        // Counted over every Connection field together.
        assertRefused("GET / HTTP/1.1\r\nHost: h\r\nConnection: \(sixteen)\r\nConnection: close\r\n\r\n",
                      .badRequest(.tooManyConnectionOptions))
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nConnection: \(sixteen), x-17\r\n\r\n"),
                       .error(.badRequest(.tooManyConnectionOptions)))
    }

    func testEmptyTransferEncodingIsRefusedWith400() {
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", .badRequest(.invalidTransferEncoding))
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,\r\n\r\n", .badRequest(.invalidTransferEncoding))
        assertRefused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n",
                      .badRequest(.invalidTransferEncoding))
    }

    func testErrorsMapToTheirStatusCodes() {
        XCTAssertEqual(HTTPParseError.badRequest(.obsFold).status, 400)
        XCTAssertEqual(HTTPParseError.uriTooLong.status, 414)
        XCTAssertEqual(HTTPParseError.headersTooLarge.status, 431)
        XCTAssertEqual(HTTPParseError.notImplemented.status, 501)
        XCTAssertEqual(HTTPParseError.versionNotSupported.status, 505)
    }

    // MARK: Responses

    func testResponseWithContentLengthIsParsed() {
        let res = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        guard let h = response(res) else { return }
        XCTAssertEqual(h.status, 200)
        XCTAssertEqual(h.version, .http11)
        XCTAssertEqual(h.headLength, res.utf8.count - 2)
        XCTAssertEqual(h.fieldCount, 2)
        XCTAssertEqual(h.contentLength, 2)
        XCTAssertTrue(h.keepAlive)
        XCTAssertEqual(responseBody(h, requestWasHEAD: false), .contentLength(2))
    }

    func testStatusLineWithoutReasonOrItsSpaceIsAccepted() {
        XCTAssertEqual(response("HTTP/1.1 200\r\n\r\n")?.status, 200)
        XCTAssertEqual(response("HTTP/1.1 404 \r\n\r\n")?.status, 404)
        XCTAssertEqual(response("HTTP/1.1 599 Some \tlong reason caf\u{e9}\r\n\r\n")?.status, 599)
    }

    func testMalformedStatusLinesAreRefused() {
        for line in ["HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1  200 OK", "http/1.1 200 OK", "HTTP/1.1 099 X",
                     "HTTP/1.1 2x0 OK", "HTTP/1.1\t200 OK", "HTTP/1.1 200 O\u{0}K", "ICY 200 OK"] {
            XCTAssertEqual(parseResponse(line + "\r\n\r\n"), .error(.badRequest(.malformedStatusLine)), line)
        }
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\n\r\n"), .error(.badRequest(.bareLineFeed)))
        XCTAssertEqual(parseResponse("HTTP/2 200\r\n\r\n"), .error(.badRequest(.malformedStatusLine)))
        XCTAssertEqual(parseResponse("HTTP/2.0 200 OK\r\n\r\n"), .error(.versionNotSupported))
    }

    func testEveryTruncationOfAValidResponseHeadIsIncomplete() {
        let res = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        let bytes = Array(res.utf8)
        for k in 0..<bytes.count {
            XCTAssertEqual(parseResponse(String(decoding: bytes[..<k], as: UTF8.self)), .incomplete, "prefix of \(k) bytes")
        }
        XCTAssertEqual(response(res)?.upgradeWebSocket, true)
    }

    func testResponseFieldLinesFollowTheRequestRules() {
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nX : y\r\n\r\n"), .error(.badRequest(.spaceBeforeColon)))
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n"), .error(.badRequest(.obsFold)))
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
                       .error(.badRequest(.invalidContentLength)))
        let limits = HTTPLimits(requestLineBytes: 100, headerBytes: 32, maxHeaderFields: 10)
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nX: " + String(repeating: "v", count: 40), limits: limits),
                       .error(.headersTooLarge))
    }

    func testResponseWithBothLengthAndChunkedOrAnotherCodingIsRefused() {
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
                       .error(.badRequest(.contentLengthWithTransferEncoding)))
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
                       .error(.badRequest(.invalidTransferEncoding)))
        XCTAssertEqual(parseResponse("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                       .error(.badRequest(.transferEncodingInHTTP10)))
    }

    func testResponseKeepAliveFollowsVersionAndConnection() {
        XCTAssertEqual(response("HTTP/1.0 200 OK\r\n\r\n")?.keepAlive, false)
        XCTAssertEqual(response("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n")?.keepAlive, true)
        XCTAssertEqual(response("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?.keepAlive, false)
    }

    func testResponsesWithoutBodiesAreRecognised() {
        for status in [100, 101, 199, 204, 304] {
            guard let h = response("HTTP/1.1 \(status) X\r\nContent-Length: 10\r\n\r\n") else { return }
            XCTAssertEqual(responseBody(h, requestWasHEAD: false), ResponseBody.none, "\(status)")
        }
        guard let ok = response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n") else { return }
        XCTAssertEqual(responseBody(ok, requestWasHEAD: true), ResponseBody.none)
    }

    func testResponseBodyFramingIsChunkedLengthOrUntilClose() {
        guard let chunked = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
              let open = response("HTTP/1.1 200 OK\r\n\r\n"),
              let empty = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") else { return }
        XCTAssertEqual(responseBody(chunked, requestWasHEAD: false), .chunked)
        XCTAssertEqual(responseBody(open, requestWasHEAD: false), .untilClose)
        XCTAssertEqual(responseBody(empty, requestWasHEAD: false), .contentLength(0))
    }

    // MARK: Byte helpers

    func testTcharTableMatchesRFC9110() {
        let expected = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in 0...255 {
            XCTAssertEqual(HTTPBytes.isTchar(UInt8(b)), expected.contains(UInt8(b)), "byte \(b)")
        }
    }

    func testWordScansAgreeWithTheByteScans() {
        // Every byte value in every lane of an otherwise plain word.
        for lane in 0..<8 {
            for b in 0...255 {
                var word = [UInt8](repeating: UInt8(ascii: "a"), count: 8)
                word[lane] = UInt8(b)
                let w = word.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                XCTAssertEqual(HTTPBytes.hasControlByte(w), !HTTPBytes.isFieldValueByte(UInt8(b)) || b == 9, "byte \(b) lane \(lane)")
                XCTAssertEqual(HTTPBytes.hasNonVisibleByte(w), !HTTPBytes.isVisible(UInt8(b)), "byte \(b) lane \(lane)")
            }
        }
    }

    func testTokenListSkipsEmptyElementsAndTrimsWhitespace() {
        let value = " a, ,b\t,, c ,"
        let tokens: [String] = withBytes(value) { buf in
            var list = TokenList(buf, ByteRange(start: 0, end: buf.count))
            var out: [String] = []
            while let t = list.next() { out.append(String(decoding: buf[t.start..<t.end], as: UTF8.self)) }
            return out
        }
        XCTAssertEqual(tokens, ["a", "b", "c"])
    }

    func testCaseInsensitiveCompareOnlyFoldsLetters() {
        withBytes("Keep-Alive\r") { buf in
            XCTAssertTrue(HTTPBytes.equalsIgnoringCase(buf, ByteRange(start: 0, end: 10), "keep-alive"))
            XCTAssertFalse(HTTPBytes.equalsIgnoringCase(buf, ByteRange(start: 0, end: 9), "keep-alive"))
            // CR | 0x20 is '-': a compare that folds every byte would match this.
            XCTAssertFalse(HTTPBytes.equalsIgnoringCase(buf, ByteRange(start: 10, end: 11), "-"))
        }
    }
}
