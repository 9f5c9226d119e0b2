// The strict HTTP/1.1 head parsers: a request head from a client and an answer head from an
// upstream, each a pure function over the bytes received so far (the types they produce are in
// HTTPMessage.swift). Anything ambiguous is refused, never guessed at.

// MARK: - Request

/// Most options one message's Connection fields may name (RFC 9110 7.6.1); each is tracked so
/// the field it names is not forwarded.
let maxConnectionOptions = 16

/// Empty lines skipped before a request line (RFC 9112 2.2 asks for at least one).
private let maxLeadingEmptyLines = 4

/// Parses the request head at the start of `buffer` (picohttpparser style: a pure function over
/// the bytes read so far, called again from the start when more arrive). Field lines are written
/// to `fields`, which must hold `limits.maxHeaderFields` entries. Refuses as soon as the bytes
/// seen cannot start a valid head, including a request line or head already over its limit.
func parseRequestHead(_ buffer: UnsafeRawBufferPointer, fields: UnsafeMutablePointer<HeaderField>, limits: HTTPLimits) -> RequestParse {
    typealias B = HTTPBytes
    let n = buffer.count
    var i = 0
    var skipped = 0
    while i < n && skipped < maxLeadingEmptyLines && buffer[i] == B.cr {
        guard i + 1 < n else { return .incomplete }
        guard buffer[i + 1] == B.lf else { return .error(.badRequest(.bareLineFeed)) }
        i += 2
        skipped += 1
    }

    // Request line, scanned no further than its longest allowed form plus CRLF. The verdict
    // depends on the whole head, never on how its bytes were split across reads: a line longer
    // than the limit is 414 (a line that cannot fit in the head limit with its CRLF counts as
    // too long, so deciding never needs more than `headerBytes` bytes), and only a head whose
    // line is within the limit can be 431.
    let lineStart = i
    let lineLimit = max(0, min(limits.requestLineBytes, limits.headerBytes - lineStart - 2))
    let end = n - lineStart - 2 > lineLimit ? lineStart + lineLimit + 2 : n
    /// Out of bytes inside the request line: too long already, or wait for more.
    func outOfLine() -> RequestParse {
        var seen = end - lineStart
        if seen > 0 && buffer[end - 1] == B.cr { seen -= 1 }
        return seen > lineLimit ? .error(.uriTooLong) : .incomplete
    }
    /// A bad byte past the line limit: the bytes before it were already too long, which a
    /// shorter read would have answered with 414, so the whole head is answered the same.
    func lineError(_ error: HTTPParseError, at i: Int) -> RequestParse {
        if i - lineStart > lineLimit && buffer[i - 1] != B.cr { return .error(.uriTooLong) }
        return .error(error)
    }

    while i < end && B.isTchar(buffer[i]) { i += 1 }
    guard i < end else { return outOfLine() }
    if buffer[i] != B.sp {
        if buffer[i] == B.lf { return lineError(.badRequest(.bareLineFeed), at: i) }
        if buffer[i] == B.cr || i == lineStart { return lineError(.badRequest(.malformedRequestLine), at: i) }
        return lineError(.badRequest(.invalidMethod), at: i)
    }
    guard i > lineStart else { return lineError(.badRequest(.malformedRequestLine), at: i) }
    let method = ByteRange(start: lineStart, end: i)

    i += 1
    let targetStart = i
    while i + 8 <= end && !B.hasNonVisibleByte(buffer.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
    while i < end && B.isVisible(buffer[i]) { i += 1 }
    guard i < end else { return outOfLine() }
    if buffer[i] != B.sp {
        if buffer[i] == B.lf { return lineError(.badRequest(.bareLineFeed), at: i) }
        if buffer[i] == B.cr { return lineError(.badRequest(.malformedRequestLine), at: i) }
        return lineError(.badRequest(.invalidTarget), at: i)
    }
    guard i > targetStart else { return lineError(.badRequest(.malformedRequestLine), at: i) }
    let target = ByteRange(start: targetStart, end: i)

    i += 1
    var version = HTTPVersion.http11
    var unsupported = false  // refused once the line is known to be well-formed
    switch matchVersion(buffer, at: i, end: end) {
    case .incomplete: return outOfLine()
    case .malformed: return lineError(.badRequest(.malformedRequestLine), at: versionMismatch(buffer, at: i))
    case .unsupported: unsupported = true
    case .version(let v): version = v
    }
    i += 8
    guard i < end else { return outOfLine() }
    if buffer[i] != B.cr {
        return lineError(.badRequest(buffer[i] == B.lf ? .bareLineFeed : .malformedRequestLine), at: i)
    }
    guard i + 1 < end else { return outOfLine() }
    guard buffer[i + 1] == B.lf else { return lineError(.badRequest(.bareLineFeed), at: i) }
    if unsupported { return .error(.versionNotSupported) }
    i += 2

    var summary = FieldSummary()
    switch scanFields(buffer, from: i, fields: fields, limits: limits, summary: &summary) {
    case .incomplete?: return .incomplete
    case .refused(let error)?: return .error(error)
    case nil: break
    }

    if version == .http11 && summary.hostCount == 0 { return .error(.badRequest(.missingHost)) }
    if summary.hostCount > 1 { return .error(.badRequest(.multipleHosts)) }
    if summary.transferEncodingFields > 0 {
        if version == .http10 { return .error(.badRequest(.transferEncodingInHTTP10)) }
        if summary.contentLength != nil { return .error(.badRequest(.contentLengthWithTransferEncoding)) }
        if summary.emptyTransferEncoding { return .error(.badRequest(.invalidTransferEncoding)) }
        if !summary.transferEncodingIsChunked { return .error(.notImplemented) }
    }

    let upgrade = summary.upgradeWebSocket && summary.connectionUpgrade
    if upgrade && (summary.transferEncodingFields > 0 || (summary.contentLength ?? 0) > 0) {
        return .error(.badRequest(.upgradeWithBody))
    }

    return .complete(RequestHead(
        method: method,
        target: target,
        version: version,
        headLength: summary.headLength,
        fieldCount: summary.fieldCount,
        contentLength: summary.contentLength,
        chunked: summary.transferEncodingFields > 0,
        keepAlive: summary.keepAlive(version),
        expectContinue: version == .http11 && summary.expectContinue,
        host: summary.hostCount == 1 ? summary.host : nil,
        authorization: summary.authorizationCount == 1 ? summary.authorization : nil,
        authorizationCount: summary.authorizationCount,
        upgradeWebSocket: upgrade,
        isHEAD: B.equals(buffer, method, "HEAD"),
        isCONNECT: B.equals(buffer, method, "CONNECT")))
}

// MARK: - Response

/// Parses the response head at the start of `buffer`: status line `HTTP/1.x SP 3DIGIT [SP
/// reason] CRLF`, then field lines under the same rules as requests. A response with both
/// Content-Length and Transfer-Encoding, or with a coding other than exactly `chunked`, is
/// refused (the gateway answers 502 for it).
func parseResponseHead(_ buffer: UnsafeRawBufferPointer, fields: UnsafeMutablePointer<HeaderField>, limits: HTTPLimits) -> ResponseParse {
    typealias B = HTTPBytes
    let n = buffer.count
    let end = min(n, limits.headerBytes)
    func outOfHead() -> ResponseParse { end == limits.headerBytes ? .error(.headersTooLarge) : .incomplete }
    let malformed = ResponseParse.error(.badRequest(.malformedStatusLine))

    let version: HTTPVersion
    switch matchVersion(buffer, at: 0, end: end) {
    case .incomplete: return outOfHead()
    case .malformed: return malformed
    case .unsupported: return .error(.versionNotSupported)
    case .version(let v): version = v
    }
    // SP and three digits, the first 1-9; a wrong byte is refused as soon as it is buffered.
    var i = 8
    var status = 0
    while i < 12 {
        guard i < end else { return outOfHead() }
        let b = buffer[i]
        switch i {
        case 8: guard b == B.sp else { return malformed }
        case 9: guard b &- 0x31 < 9 else { return malformed }
        default: guard B.isDigit(b) else { return malformed }
        }
        if i > 8 { status = status * 10 + Int(b &- 0x30) }
        i += 1
    }
    guard i < end else { return outOfHead() }
    if buffer[i] == B.sp {
        i += 1
        while i < end && B.isFieldValueByte(buffer[i]) { i += 1 }
        guard i < end else { return outOfHead() }
    }
    if buffer[i] != B.cr { return .error(.badRequest(buffer[i] == B.lf ? .bareLineFeed : .malformedStatusLine)) }
    guard i + 1 < end else { return outOfHead() }
    guard buffer[i + 1] == B.lf else { return .error(.badRequest(.bareLineFeed)) }
    i += 2

    var summary = FieldSummary()
    switch scanFields(buffer, from: i, fields: fields, limits: limits, summary: &summary) {
    case .incomplete?: return .incomplete
    case .refused(let error)?: return .error(error)
    case nil: break
    }
    if summary.transferEncodingFields > 0 {
        if version == .http10 { return .error(.badRequest(.transferEncodingInHTTP10)) }
        if summary.contentLength != nil { return .error(.badRequest(.contentLengthWithTransferEncoding)) }
        if !summary.transferEncodingIsChunked { return .error(.badRequest(.invalidTransferEncoding)) }
    }
    return .complete(ResponseHead(
        status: status,
        version: version,
        headLength: summary.headLength,
        fieldCount: summary.fieldCount,
        contentLength: summary.contentLength,
        chunked: summary.transferEncodingFields > 0,
        keepAlive: summary.keepAlive(version),
        upgradeWebSocket: summary.upgradeWebSocket))
}

// MARK: - Shared pieces

/// Where `HTTP/` DIGIT `.` DIGIT first goes wrong at `start` (the bytes are there: `matchVersion`
/// said malformed).
private func versionMismatch(_ buffer: UnsafeRawBufferPointer, at start: Int) -> Int {
    let prefix: [UInt8] = [0x48, 0x54, 0x54, 0x50, 0x2F]
    for k in 0..<5 where buffer[start + k] != prefix[k] { return start + k }
    if !HTTPBytes.isDigit(buffer[start + 5]) { return start + 5 }
    if buffer[start + 6] != UInt8(ascii: ".") { return start + 6 }
    return start + 7
}

private enum VersionMatch: Equatable {
    case version(HTTPVersion), unsupported, malformed, incomplete
}

/// Matches `HTTP/` DIGIT `.` DIGIT at `at` (case-sensitive, RFC 9112 2.3), refusing a wrong byte
/// as soon as it is buffered.
@inline(__always)
private func matchVersion(_ buffer: UnsafeRawBufferPointer, at start: Int, end: Int) -> VersionMatch {
    let prefix: StaticString = "HTTP/"
    let ok = prefix.withUTF8Buffer { p -> Bool? in
        var k = 0
        while k < 5 {
            guard start + k < end else { return nil }
            if buffer[start + k] != p[k] { return false }
            k += 1
        }
        return true
    }
    guard let ok else { return .incomplete }
    guard ok else { return .malformed }
    guard start + 5 < end else { return .incomplete }
    let major = buffer[start + 5]
    guard HTTPBytes.isDigit(major) else { return .malformed }
    guard start + 6 < end else { return .incomplete }
    guard buffer[start + 6] == UInt8(ascii: ".") else { return .malformed }
    guard start + 7 < end else { return .incomplete }
    let minor = buffer[start + 7]
    guard HTTPBytes.isDigit(minor) else { return .malformed }
    guard major == UInt8(ascii: "1") else { return .unsupported }
    switch minor {
    case UInt8(ascii: "1"): return .version(.http11)
    case UInt8(ascii: "0"): return .version(.http10)
    default: return .unsupported
    }
}

/// What the field lines said about framing and the connection, gathered in one pass.
private struct FieldSummary {
    var headLength = 0
    var fieldCount = 0
    var contentLength: Int64?
    var transferEncodingFields = 0
    var transferEncodingTokens = 0
    /// The first Transfer-Encoding element is `chunked`.
    var firstCodingIsChunked = false
    /// A Transfer-Encoding field without any element.
    var emptyTransferEncoding = false
    var hostCount = 0
    var host: ByteRange?
    var authorizationCount = 0
    var authorization: ByteRange?
    var connectionOptions = 0
    var connectionClose = false
    var connectionKeepAlive = false
    var connectionUpgrade = false
    var upgradeWebSocket = false
    var expectContinue = false

    /// Exactly one coding in all Transfer-Encoding fields together, and it is `chunked`.
    var transferEncodingIsChunked: Bool { transferEncodingTokens == 1 && firstCodingIsChunked && !emptyTransferEncoding }

    func keepAlive(_ version: HTTPVersion) -> Bool {
        if connectionClose { return false }
        return version == .http11 || connectionKeepAlive
    }
}

/// Why `scanFields` stopped early.
private enum FieldScanStop {
    case incomplete
    case refused(HTTPParseError)
}

/// Scans field lines from `start` to the empty line ending the head, storing each in `fields`
/// and noting the ones that matter for framing; nil when the head is complete.
private func scanFields(_ buffer: UnsafeRawBufferPointer, from start: Int, fields: UnsafeMutablePointer<HeaderField>,
                        limits: HTTPLimits, summary: inout FieldSummary) -> FieldScanStop? {
    typealias B = HTTPBytes
    let end = min(buffer.count, limits.headerBytes)
    // Running out of bytes at `end` when `end` is the limit means the head is longer than it.
    let outOfHead: FieldScanStop = end == limits.headerBytes ? .refused(.headersTooLarge) : .incomplete
    var i = start
    while true {
        guard i < end else { return outOfHead }
        var b = buffer[i]
        if b == B.cr {
            guard i + 1 < end else { return outOfHead }
            guard buffer[i + 1] == B.lf else { return .refused(.badRequest(.bareLineFeed)) }
            summary.headLength = i + 2
            return nil
        }
        if b == B.lf { return .refused(.badRequest(.bareLineFeed)) }
        if B.isOWS(b) { return .refused(.badRequest(.obsFold)) }

        let nameStart = i
        while i < end && B.isTchar(buffer[i]) { i += 1 }
        guard i < end else { return outOfHead }
        b = buffer[i]
        if b != B.colon {
            if b == B.lf { return .refused(.badRequest(.bareLineFeed)) }
            if B.isOWS(b) { return .refused(.badRequest(.spaceBeforeColon)) }
            return .refused(.badRequest(.invalidHeaderName))
        }
        if i == nameStart { return .refused(.badRequest(.invalidHeaderName)) }
        let name = ByteRange(start: nameStart, end: i)
        i += 1

        while i < end && B.isOWS(buffer[i]) { i += 1 }
        let valueStart = i
        while true {
            while i + 8 <= end && !B.hasControlByte(buffer.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
            while i < end && B.isFieldValueByte(buffer[i]) { i += 1 }
            guard i < end else { return outOfHead }
            b = buffer[i]
            if b == B.cr { break }
            return .refused(.badRequest(b == B.lf ? .bareLineFeed : .invalidHeaderValue))
        }
        guard i + 1 < end else { return outOfHead }
        guard buffer[i + 1] == B.lf else { return .refused(.badRequest(.bareLineFeed)) }
        var valueEnd = i
        while valueEnd > valueStart && B.isOWS(buffer[valueEnd - 1]) { valueEnd -= 1 }
        let value = ByteRange(start: valueStart, end: valueEnd)
        i += 2

        guard summary.fieldCount < limits.maxHeaderFields else { return .refused(.headersTooLarge) }
        fields[summary.fieldCount] = HeaderField(name: name, value: value)
        summary.fieldCount += 1
        if let error = note(buffer, name: name, value: value, in: &summary) { return .refused(error) }
    }
}

/// Records a field that bears on framing, routing or the connection. Names are told apart by
/// length first, so most fields cost one switch.
@inline(__always)
private func note(_ buffer: UnsafeRawBufferPointer, name: ByteRange, value: ByteRange, in s: inout FieldSummary) -> HTTPParseError? {
    typealias B = HTTPBytes
    switch name.count {
    case 4 where B.equalsIgnoringCase(buffer, name, "host"):
        s.hostCount += 1
        s.host = value
    case 6 where B.equalsIgnoringCase(buffer, name, "expect"):
        if B.equalsIgnoringCase(buffer, value, "100-continue") { s.expectContinue = true }
    case 7 where B.equalsIgnoringCase(buffer, name, "upgrade"):
        if B.listContains(buffer, value, "websocket") { s.upgradeWebSocket = true }
    case 10 where B.equalsIgnoringCase(buffer, name, "connection"):
        var tokens = TokenList(buffer, value)
        while let t = tokens.next() {
            // Every option names a field to drop on the way through: more than the rewriter
            // tracks would let some cross, so the message is refused.
            s.connectionOptions += 1
            if s.connectionOptions > maxConnectionOptions { return .badRequest(.tooManyConnectionOptions) }
            if B.equalsIgnoringCase(buffer, t, "close") { s.connectionClose = true }
            else if B.equalsIgnoringCase(buffer, t, "keep-alive") { s.connectionKeepAlive = true }
            else if B.equalsIgnoringCase(buffer, t, "upgrade") { s.connectionUpgrade = true }
        }
    case 13 where B.equalsIgnoringCase(buffer, name, "authorization"):
        s.authorizationCount += 1
        s.authorization = value
    case 14 where B.equalsIgnoringCase(buffer, name, "content-length"):
        guard let length = B.parseContentLength(buffer, value) else { return .badRequest(.invalidContentLength) }
        if let previous = s.contentLength, previous != length { return .badRequest(.invalidContentLength) }
        s.contentLength = length
    case 17 where B.equalsIgnoringCase(buffer, name, "transfer-encoding"):
        s.transferEncodingFields += 1
        var tokens = TokenList(buffer, value)
        var count = 0
        while let t = tokens.next() {
            if s.transferEncodingTokens == 0 { s.firstCodingIsChunked = B.equalsIgnoringCase(buffer, t, "chunked") }
            s.transferEncodingTokens += 1
            count += 1
        }
        if count == 0 { s.emptyTransferEncoding = true }
    default:
        break
    }
    return nil
}
