/// Writes the head the upstream sees, from the client's parsed head (h2o's proxy.c split: this
/// file decides what crosses; the upstream client state machine sends it).
///
/// Dropped: hop-by-hop fields (Connection and every field it names, Keep-Alive,
/// Proxy-Authorization, Proxy-Connection, TE, Trailer, Upgrade unless a WebSocket is tunnelled),
/// every client-sent identity field (`X-Forwarded-User` and the fields of
/// `server.strip_request_fields`, in any case and with `_` for `-`), client-sent
/// X-Forwarded-Proto/-Host (replaced), Authorization unless the route forwards it,
/// Expect (the gateway answers 100-continue itself), and the framing fields (re-emitted, so the
/// upstream never sees both Content-Length and Transfer-Encoding).
/// Added: X-Forwarded-For (the client's value with the peer appended), X-Forwarded-Proto,
/// X-Forwarded-Host, X-Forwarded-User when a token was verified, X-Request-Id when absent, and
/// X-Real-IP / `Forwarded: for=` from the peer when those are in the strip list.
enum RequestRewriter {
    struct Input {
        var buffer: UnsafeRawBufferPointer
        var head: RequestHead
        var fields: UnsafeMutablePointer<HeaderField>
        var forwardAuthorization: Bool
        var subject: UnsafeRawBufferPointer?
        var peer: PeerAddress
        var tunnel: Bool
        /// Client fields never forwarded, besides the fixed ones.
        var strip: StrippedFields
        /// How the client reached the gateway (`http` or `https`), for X-Forwarded-Proto.
        var scheme: StaticString = "http"
    }

    /// Appends the upstream request head to `out`, whole; false (and `out` unchanged) when it
    /// does not fit, which the caller answers with 431.
    static func write(_ input: Input, into out: inout ByteBuffer,
                      requestID: (inout ByteBuffer) -> Bool) -> Bool {
        let buf = input.buffer
        let head = input.head
        func bytes(_ r: ByteRange) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buf[r.start..<r.end]) }

        // Names listed in Connection are hop-by-hop too (RFC 9110 7.6.1).
        let listed = ConnectionOptions(buffer: buf, fields: input.fields, fieldCount: head.fieldCount)

        var w = HeadWriter(into: out)
        w.append(bytes(head.method))
        w.append(byte: 0x20)
        w.append(bytes(head.target))
        w.append(" HTTP/1.1\r\n")
        var xffField: Int = -1
        var hasRequestID = false
        for i in 0..<head.fieldCount {
            let f = input.fields[i]
            let name = bytes(f.name)
            switch HeaderName.classify(name) {
            case .hopByHop, .identity, .framing, .expect, .forwardedProto, .forwardedHost:
                continue
            case .upgrade:
                if !input.tunnel { continue }
            case .authorization:
                if !input.forwardAuthorization { continue }
            case .forwardedFor:
                if xffField < 0 && !input.strip.contains(name) { xffField = i }
                continue
            case .requestID:
                if input.strip.contains(name) { continue }
                hasRequestID = true
            case .other:
                if listed.names(name) || input.strip.contains(name) { continue }
            }
            w.field(name, bytes(f.value))
        }
        w.append("X-Forwarded-For: ")
        if xffField >= 0 {
            // Every X-Forwarded-For the client sent, in order, then the peer.
            for i in xffField..<head.fieldCount where HeaderName.classify(bytes(input.fields[i].name)) == .forwardedFor {
                w.append(bytes(input.fields[i].value))
                w.append(", ")
            }
        }
        w.append(with: input.peer.append)
        w.append("\r\nX-Forwarded-Proto: ")
        w.append(input.scheme)
        w.append("\r\n")
        if let host = head.host { w.field("X-Forwarded-Host", bytes(host)) }
        if input.strip.setsRealIP {
            w.append("X-Real-IP: ")
            w.append(with: input.peer.append)
            w.append("\r\n")
        }
        if input.strip.setsForwarded {
            // RFC 7239: an IPv6 node is bracketed and quoted.
            w.append(input.peer.isV6 ? "Forwarded: for=\"[" : "Forwarded: for=")
            w.append(with: input.peer.append)
            w.append(input.peer.isV6 ? "]\";proto=" : ";proto=")
            w.append(input.scheme)
            w.append("\r\n")
        }
        if let subject = input.subject { w.field("X-Forwarded-User", subject) }
        if !hasRequestID {
            w.append("X-Request-Id: ")
            w.append(with: requestID)
            w.append("\r\n")
        }
        // The framing lines: the body that follows is framed exactly as the client framed it, an
        // upgrade included (the parser refuses an upgrade that carries a body, so none follows).
        if input.tunnel { w.append("Connection: Upgrade\r\n") }
        if head.chunked {
            w.append("Transfer-Encoding: chunked\r\n")
        } else if let cl = head.contentLength, cl > 0 || !input.tunnel {
            w.append("Content-Length: ")
            w.append(decimal: cl)
            w.append("\r\n")
        }
        w.append("\r\n")
        guard let written = w.finish() else { return false }
        out = written
        return true
    }
}

/// `server.strip_request_fields`, compiled once per configuration: lower-case names with `-` for
/// `_`, matched against a request's field names without allocating.
struct StrippedFields: Sendable {
    private let names: [[UInt8]]
    /// Bit n set when some name is n bytes long (n < 64), a quick first refusal.
    private let lengths: UInt64
    /// X-Real-IP / Forwarded are in the list, so the gateway sets them from the peer.
    let setsRealIP: Bool
    let setsForwarded: Bool

    init(_ configured: [String]) {
        let normalized = configured.map { name in name.utf8.map { $0 == UInt8(ascii: "_") ? UInt8(ascii: "-") : HTTPBytes.lower($0) } }
        names = normalized
        lengths = normalized.reduce(0) { $1.count < 64 ? $0 | (1 << UInt64($1.count)) : $0 | (1 << 63) }
        setsRealIP = normalized.contains(Array("x-real-ip".utf8))
        setsForwarded = normalized.contains(Array("forwarded".utf8))
    }

    static let none = StrippedFields([])

    /// True when `name` is listed (ASCII case ignored, `_` read as `-`).
    func contains(_ name: UnsafeRawBufferPointer) -> Bool {
        guard lengths & (1 << UInt64(min(name.count, 63))) != 0 else { return false }
        for listed in names where listed.count == name.count {
            var k = 0
            while k < name.count {
                let c = name[k] == UInt8(ascii: "_") ? UInt8(ascii: "-") : HTTPBytes.lower(name[k])
                if c != listed[k] { break }
                k += 1
            }
            if k == name.count { return true }
        }
        return false
    }
}

/// Field names the rewriter treats specially, matched without regard to case.
enum HeaderName: Equatable {
    case hopByHop, identity, framing, expect, upgrade, authorization, forwardedFor, forwardedProto
    case forwardedHost, requestID, other

    static func classify(_ name: UnsafeRawBufferPointer) -> HeaderName {
        switch name.count {
        case 2: if equals(name, "te") { return .hopByHop }
        case 6: if equals(name, "expect") { return .expect }
        case 7:
            if equals(name, "trailer") { return .hopByHop }
            if equals(name, "upgrade") { return .upgrade }
        case 10:
            if equals(name, "connection") || equals(name, "keep-alive") { return .hopByHop }
        case 12: if equals(name, "x-request-id") { return .requestID }
        case 13: if equals(name, "authorization") { return .authorization }
        case 14: if equals(name, "content-length") { return .framing }
        case 15: if equals(name, "x-forwarded-for") { return .forwardedFor }
        case 16:
            if equalsIdentity(name) { return .identity }
            if equals(name, "proxy-connection") { return .hopByHop }
            if equals(name, "x-forwarded-host") { return .forwardedHost }
        case 17:
            if equals(name, "transfer-encoding") { return .framing }
            if equals(name, "x-forwarded-proto") { return .forwardedProto }
        case 19: if equals(name, "proxy-authorization") { return .hopByHop }
        default: break
        }
        return .other
    }

    /// ASCII case-insensitive equality with a lower-case literal.
    @inline(__always)
    static func equals(_ name: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        HTTPBytes.equalsIgnoringCase(name, ByteRange(start: 0, end: name.count), lower)
    }

    /// `X-Forwarded-User` in any case, with `_` read as `-` anywhere.
    static func equalsIdentity(_ name: UnsafeRawBufferPointer) -> Bool {
        let target: StaticString = "x-forwarded-user"
        guard name.count == target.utf8CodeUnitCount else { return false }
        for i in 0..<name.count {
            var c = name[i]
            if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") { c |= 0x20 }
            if c == UInt8(ascii: "_") { c = UInt8(ascii: "-") }
            if c != target.utf8Start[i] { return false }
        }
        return true
    }
}

/// The options a message's Connection fields name: fields that are hop-by-hop for this message
/// (RFC 9110 7.6.1) and so never forwarded. Read from the parsed fields when asked, so it holds no
/// storage; the parser refuses more than `maxConnectionOptions`, which bounds the work.
struct ConnectionOptions {
    private let buffer: UnsafeRawBufferPointer
    private let fields: UnsafeMutablePointer<HeaderField>
    private let fieldCount: Int
    private let hasAny: Bool

    init(buffer: UnsafeRawBufferPointer, fields: UnsafeMutablePointer<HeaderField>, fieldCount: Int) {
        self.buffer = buffer
        self.fields = fields
        self.fieldCount = fieldCount
        var found = false
        for i in 0..<fieldCount where HTTPBytes.equalsIgnoringCase(buffer, fields[i].name, "connection") {
            found = true
            break
        }
        hasAny = found
    }

    /// True when a Connection field names `name` (ASCII case ignored).
    func names(_ name: UnsafeRawBufferPointer) -> Bool {
        guard hasAny else { return false }
        for i in 0..<fieldCount where HTTPBytes.equalsIgnoringCase(buffer, fields[i].name, "connection") {
            var options = TokenList(buffer, fields[i].value)
            while let option = options.next() {
                guard option.count == name.count else { continue }
                var k = 0
                while k < name.count && HTTPBytes.lower(name[k]) == HTTPBytes.lower(buffer[option.start + k]) { k += 1 }
                if k == name.count { return true }
            }
        }
        return false
    }
}
