/// Writes the head the upstream sees, from the client's parsed head (h2o's proxy.c split: this
/// file decides what crosses; the upstream client state machine sends it).
///
/// Dropped: hop-by-hop fields (Connection and every field it names, Keep-Alive,
/// Proxy-Authorization, Proxy-Connection, TE, Trailer, Upgrade unless a WebSocket is tunnelled),
/// every client-sent identity field (`X-Forwarded-User` in any case and with `_` for `-`),
/// client-sent X-Forwarded-Proto/-Host (replaced), Authorization unless the route forwards it,
/// Expect (the gateway answers 100-continue itself), and the framing fields (re-emitted, so the
/// upstream never sees both Content-Length and Transfer-Encoding).
/// Added: X-Forwarded-For (the client's value with the peer appended), X-Forwarded-Proto,
/// X-Forwarded-Host, X-Forwarded-User when a token was verified, X-Request-Id when absent.
enum RequestRewriter {
    struct Input {
        var buffer: UnsafeRawBufferPointer
        var head: RequestHead
        var fields: UnsafeMutablePointer<HeaderField>
        var forwardAuthorization: Bool
        var subject: UnsafeRawBufferPointer?
        var peer: PeerAddress
        var tunnel: Bool
        /// How the client reached the gateway (`http` or `https`), for X-Forwarded-Proto.
        var scheme: StaticString = "http"
    }

    /// Appends the upstream request head; false when it does not fit in `out`.
    static func write(_ input: Input, into out: inout ByteBuffer, requestID: (inout ByteBuffer) -> Void) -> Bool {
        let buf = input.buffer
        let head = input.head
        func bytes(_ r: ByteRange) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buf[r.start..<r.end]) }

        // Names listed in Connection are hop-by-hop too (RFC 9110 7.6.1).
        var listed = ConnectionTokens()
        for i in 0..<head.fieldCount where HeaderName.equals(bytes(input.fields[i].name), "connection") {
            listed.add(bytes(input.fields[i].value), base: buf)
        }

        let start = out.writerIndex
        out.append(bytes(head.method))
        out.append(byte: 0x20)
        out.append(bytes(head.target))
        out.append(" HTTP/1.1\r\n")
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
                if xffField < 0 { xffField = i }
                continue
            case .requestID:
                hasRequestID = true
            case .other:
                if listed.contains(name, base: buf) { continue }
            }
            out.append(name)
            out.append(": ")
            out.append(bytes(f.value))
            out.append("\r\n")
        }
        out.append("X-Forwarded-For: ")
        if xffField >= 0 {
            // Every X-Forwarded-For the client sent, in order, then the peer.
            for i in xffField..<head.fieldCount where HeaderName.classify(bytes(input.fields[i].name)) == .forwardedFor {
                out.append(bytes(input.fields[i].value))
                out.append(", ")
            }
        }
        input.peer.append(to: &out)
        out.append("\r\nX-Forwarded-Proto: ")
        out.append(input.scheme)
        out.append("\r\n")
        if let host = head.host {
            out.append("X-Forwarded-Host: ")
            out.append(bytes(host))
            out.append("\r\n")
        }
        if let subject = input.subject {
            out.append("X-Forwarded-User: ")
            out.append(subject)
            out.append("\r\n")
        }
        if !hasRequestID {
            out.append("X-Request-Id: ")
            requestID(&out)
            out.append("\r\n")
        }
        if input.tunnel {
            out.append("Connection: Upgrade\r\n")
        } else if head.chunked {
            out.append("Transfer-Encoding: chunked\r\n")
        } else if let cl = head.contentLength {
            out.append("Content-Length: ")
            out.append(decimal: cl)
            out.append("\r\n")
        }
        let ok = out.append("\r\n")
        if !ok || out.writerIndex - start > out.capacity - 1 {
            out.writerIndex = start
            return false
        }
        return true
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

/// The field names a Connection header lists (at most 16 kept; more is a hostile request).
struct ConnectionTokens {
    private var ranges: [(Int, Int)] = []

    mutating func add(_ value: UnsafeRawBufferPointer, base: UnsafeRawBufferPointer) {
        let offset = base.baseAddress!.distance(to: value.baseAddress ?? base.baseAddress!)
        var i = 0
        while i < value.count {
            while i < value.count && (value[i] == 0x20 || value[i] == 0x09 || value[i] == UInt8(ascii: ",")) { i += 1 }
            let s = i
            while i < value.count && value[i] != UInt8(ascii: ",") && value[i] != 0x20 && value[i] != 0x09 { i += 1 }
            if i > s && ranges.count < 16 { ranges.append((offset + s, offset + i)) }
        }
    }

    func contains(_ name: UnsafeRawBufferPointer, base: UnsafeRawBufferPointer) -> Bool {
        for (s, e) in ranges where e - s == name.count {
            var same = true
            for k in 0..<name.count where (name[k] | 0x20) != (base[s + k] | 0x20) { same = false; break }
            if same { return true }
        }
        return false
    }
}
