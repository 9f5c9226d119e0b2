import Glibc
import TokenCore

/// An HTTP/2 request's header list written out as an HTTP/1.1 request head, so that one strict
/// parser, one endpoint table, one bearer check and one rewriter serve both protocols.
///
/// nghttp2 has already checked the list as RFC 9113 §8 requires (pseudo-fields once each and
/// before the others, no upper case, no connection-specific fields, `te` only `trailers`, no
/// CR, LF or NUL in a value). What is left is checked here: `host` must agree with `:authority`;
/// the head must fit `limits.header_bytes` (431). Cookie crumbs are joined into one field
/// (§8.2.3). The pseudo-fields are kept at the front of the buffer as they come; the head
/// proper starts after them (`headStart`), its request line written once the first regular
/// field arrives, so no field is copied twice.
struct HTTP2RequestHead {
    enum Failure: Error, Equatable {
        /// Over the size limit: 431.
        case tooLarge
        /// A stream error (RST_STREAM PROTOCOL_ERROR).
        case malformed
    }

    /// How the body is framed in the head given to the parser.
    enum Framing: Equatable {
        /// As the client said: no body, or its `content-length`.
        case asSent
        /// A body of unknown length: `transfer-encoding: chunked` toward the upstream.
        case chunked
        /// The whole body is known (the gateway's own endpoints): `content-length: n`.
        case length(Int)
    }

    private(set) var failure: Failure?
    /// Where the HTTP/1.1 head begins in the buffer (nil until the request line is written).
    private(set) var headStart: Int?
    private var method: Range<Int>?
    private var path: Range<Int>?
    private var authority: Range<Int>?
    private var host: Range<Int>?
    private var protocolName: Range<Int>?
    /// An extended CONNECT (RFC 8441) for a WebSocket: written as HTTP/1.1's upgrade request.
    private(set) var isWebSocket = false
    /// The `Sec-WebSocket-Key` the HTTP/1.1 upgrade carries (HTTP/2 clients send none); the
    /// stream sets a random one when `:protocol` arrives.
    var webSocketKey = ""
    private(set) var hasContentLength = false
    /// `expect: 100-continue` was sent.
    private(set) var expectsContinue = false
    private var cookies: [UInt8] = []
    /// The most bytes of the head (request line and fields).
    let limit: Int
    /// Grows the buffer (once, to a large one) for a head that needs it; nil: never.
    private let pool: BufferPool?

    /// A head written into a buffer whose reader index stays 0 (offsets are from its base).
    init(limit: Int, pool: BufferPool?) {
        self.limit = limit
        self.pool = pool
    }

    /// The `:path` as received, once known.
    func pathBytes(in buffer: ByteBuffer) -> UnsafeRawBufferPointer? {
        path.map { Self.bytes($0, buffer) }
    }

    /// Byte equality with a literal (field names arrive lower-case, as nghttp2 checked).
    @inline(__always)
    static func same(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount && memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0
    }

    private static func bytes(_ r: Range<Int>, _ buffer: ByteBuffer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer.base + r.lowerBound, count: r.count)
    }

    /// Adds one field of the list (in the order received).
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        guard failure == nil else { return }
        if name.first == UInt8(ascii: ":") {
            guard headStart == nil else { failure = .malformed; return }
            guard let range = keep(value, in: &buffer) else { return }
            switch name.count {
            case 5 where Self.same(name, ":path"): path = range
            case 7 where Self.same(name, ":method"): method = range
            case 10 where Self.same(name, ":authority"): authority = range
            case 9 where Self.same(name, ":protocol"): protocolName = range
            default: break  // :scheme (nghttp2 checked it)
            }
            return
        }
        if headStart == nil { writeRequestLine(into: &buffer) }
        guard failure == nil else { return }
        if Self.same(name, "cookie") {
            if !cookies.isEmpty { cookies.append(contentsOf: "; ".utf8) }
            cookies.append(contentsOf: value)
            if cookies.count > limit { failure = .tooLarge }
            return
        }
        if Self.same(name, "host") {
            if let a = authority {
                // The same host as :authority (compared without case), or the request is malformed.
                let given = Self.bytes(a, buffer)
                guard given.count == value.count, zip(given, value).allSatisfy({ HTTPBytes.lower($0) == HTTPBytes.lower($1) }) else {
                    failure = .malformed
                    return
                }
                return  // already written from :authority
            }
            host = 0..<0
        }
        if Self.same(name, "content-length") { hasContentLength = true }
        if Self.same(name, "expect") && value.count == 12 && zip(value, "100-continue".utf8).allSatisfy({ HTTPBytes.lower($0) == $1 }) {
            expectsContinue = true
        }
        // The upgrade's key is the gateway's own; one the client sent would make it two.
        if isWebSocket && Self.same(name, "sec-websocket-key") { return }
        writeField(name, value, into: &buffer)
    }

    /// Ends the head (with `body` appended after it for the gateway's own endpoints); the
    /// head's bytes, or the failure.
    mutating func finish(_ framing: Framing, into buffer: inout ByteBuffer) -> Result<Range<Int>, Failure> {
        if headStart == nil { writeRequestLine(into: &buffer) }
        if !cookies.isEmpty {
            let c = cookies
            cookies = []
            let name: StaticString = "cookie"
            c.withUnsafeBytes { writeField(UnsafeRawBufferPointer(start: name.utf8Start, count: 6), $0, into: &buffer) }
        }
        switch framing {
        case .asSent: break
        case .chunked: writeLine("transfer-encoding: chunked\r\n", into: &buffer)
        case let .length(n):
            writeLine("content-length: ", into: &buffer)
            if failure == nil && room(20, &buffer) { _ = buffer.append(decimal: Int64(n)) }
            writeLine("\r\n", into: &buffer)
        }
        writeLine("\r\n", into: &buffer)
        if let failure { return .failure(failure) }
        return .success(headStart!..<buffer.writerIndex)
    }

    // MARK: writing

    /// Copies a pseudo-field's value to the front of the buffer.
    private mutating func keep(_ value: UnsafeRawBufferPointer, in buffer: inout ByteBuffer) -> Range<Int>? {
        let start = buffer.writerIndex
        guard value.count <= limit, room(value.count, &buffer) else { failure = .tooLarge; return nil }
        buffer.appendWithinRoom(value)
        return start..<buffer.writerIndex
    }

    private mutating func writeRequestLine(into buffer: inout ByteBuffer) {
        guard failure == nil else { headStart = buffer.writerIndex; return }
        // A request without :method or :path never gets here whole: nghttp2 resets it first.
        guard var method, let path else { headStart = buffer.writerIndex; failure = .malformed; return }
        if let p = protocolName {
            // Only a WebSocket may be opened this way; it goes up as HTTP/1.1's GET + Upgrade.
            guard Self.same(Self.bytes(method, buffer), "CONNECT"), Self.same(Self.bytes(p, buffer), "websocket"),
                  room(3, &buffer) else {
                headStart = buffer.writerIndex
                if failure == nil { failure = .malformed }
                return
            }
            isWebSocket = true
            let get = buffer.writerIndex
            buffer.appendWithinRoom("GET")
            method = get..<buffer.writerIndex
        }
        headStart = buffer.writerIndex
        // One room check for the request line and Host: the values are read from this buffer.
        // "METHOD SP PATH SP HTTP/1.1 CRLF" is 12 bytes besides the two; "host: " and CRLF 8.
        guard room(method.count + path.count + 12 + (authority.map { $0.count + 8 } ?? 0), &buffer) else { return }
        buffer.appendWithinRoom(Self.bytes(method, buffer))
        buffer.appendWithinRoom(" ")
        buffer.appendWithinRoom(Self.bytes(path, buffer))
        buffer.appendWithinRoom(" HTTP/1.1\r\n")
        if let authority {
            buffer.appendWithinRoom("host: ")
            buffer.appendWithinRoom(Self.bytes(authority, buffer))
            buffer.appendWithinRoom("\r\n")
        }
        if isWebSocket {
            var key = webSocketKey
            key.withUTF8 { k in
                guard room(k.count + 70, &buffer) else { return }
                buffer.appendWithinRoom("upgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: ")
                buffer.appendWithinRoom(UnsafeRawBufferPointer(k))
                buffer.appendWithinRoom("\r\n")
            }
        }
        checkSize(buffer)
    }

    private mutating func writeField(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        guard failure == nil, room(name.count + value.count + 4, &buffer) else { return }
        buffer.appendWithinRoom(name)
        buffer.appendWithinRoom(": ")
        buffer.appendWithinRoom(value)
        buffer.appendWithinRoom("\r\n")
        checkSize(buffer)
    }

    private mutating func writeLine(_ text: StaticString, into buffer: inout ByteBuffer) {
        guard failure == nil, room(text.utf8CodeUnitCount, &buffer) else { return }
        buffer.appendWithinRoom(text)
    }

    /// Room for `n` more bytes, growing the buffer once if need be; `.tooLarge` when there is none.
    private mutating func room(_ n: Int, _ buffer: inout ByteBuffer) -> Bool {
        if buffer.writableBytes >= n { return true }
        if let pool, pool.enlarge(&buffer), buffer.writableBytes >= n { return true }
        failure = .tooLarge
        return false
    }

    private mutating func checkSize(_ buffer: ByteBuffer) {
        if let start = headStart, buffer.writerIndex - start > limit { failure = .tooLarge }
    }

    /// A `Sec-WebSocket-Key` for the HTTP/1.1 upgrade (16 random bytes, base64).
    static func newWebSocketKey() -> String {
        let url = Base64URL.encode(Crypto.randomBytes(16))
        return String(url.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 }) + "=="
    }
}
