import CGatewayShims
import Glibc

/// One HTTP/1.1 GET over a blocking socket, plain or verified TLS (chain, host name, SNI, TLS
/// 1.2+), for the gateway's background threads — an identity provider's keys, an upstream's
/// about object — and never for an event loop. Bounded in time (the whole fetch), head size and
/// body size; a body over the limit is refused, never cut short.
struct BlockingFetch {
    struct Answer {
        var status: Int
        /// Every Cache-Control field value, joined by ", "; nil when there is none.
        var cacheControl: String?
        var body: [UInt8]
    }

    enum Failure: Error, Equatable, CustomStringConvertible {
        case connect
        case tls(String)
        case timeout
        case tooLarge(Int)
        case malformed
        case closed

        init(_ f: BlockingChannel.Failure) {
            switch f {
            case .connect: self = .connect
            case let .tls(why): self = .tls(why)
            case .timeout: self = .timeout
            case .closed: self = .closed
            }
        }

        var description: String {
            switch self {
            case .connect: return "cannot connect"
            case let .tls(why): return "TLS: \(why)"
            case .timeout: return "timed out"
            case let .tooLarge(limit): return "the answer is larger than \(limit) bytes"
            case .malformed: return "the answer is not well-formed HTTP/1.1"
            case .closed: return "the connection closed before the answer was complete"
            }
        }
    }

    var maxBodyBytes = 1 << 20
    var timeoutSeconds = 5

    /// GETs `path` from `address`, with TLS as `tls` says (nil: plain), all of it within
    /// `timeoutSeconds` (`BlockingChannel`: a peer sending a byte at a time cannot stretch it).
    func get(address: SocketAddress, hostHeader: String, path: String, tls: UpstreamTLS?) -> Result<Answer, Failure> {
        let deadline = BlockingChannel.Deadline(milliseconds: timeoutSeconds * 1_000)
        let channel: BlockingChannel
        switch BlockingChannel.open(address, tls: tls, deadline: deadline) {
        case let .success(c): channel = c
        case let .failure(f): return .failure(Failure(f))
        }
        defer { channel.close() }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nAccept: application/json\r\nConnection: close\r\n\r\n".utf8)
        if let f = channel.write(request, deadline: deadline) { return .failure(Failure(f)) }
        return readAnswer(channel, deadline: deadline)
    }

    private func readAnswer(_ channel: BlockingChannel, deadline: BlockingChannel.Deadline) -> Result<Answer, Failure> {
        var data: [UInt8] = []
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 100)
        defer { fields.deallocate() }
        var head: ResponseHead?
        var body = BodyReader(maxBodyBytes: maxBodyBytes)
        var eof = false
        while true {
            if head == nil {
                let parsed = data.withUnsafeBytes { parseResponseHead($0, fields: fields, limits: HTTPLimits(headerBytes: HTTPLimits.maxHeadBytes)) }
                switch parsed {
                case let .complete(h):
                    // Interim answers (100 Continue) are skipped.
                    if h.status < 200 { data.removeFirst(h.headLength); continue }
                    head = h
                    body.start(h, offset: h.headLength)
                case .error: return .failure(.malformed)
                case .incomplete: if data.count > HTTPLimits.maxHeadBytes { return .failure(.malformed) }
                }
            }
            if let h = head {
                switch body.advance(data, eof: eof) {
                case .complete:
                    return .success(Answer(status: h.status, cacheControl: Self.cacheControl(h, fields: fields, data: data), body: body.bytes))
                case .more: break
                case let .failed(f): return .failure(f)
                }
            }
            if eof { return .failure(.closed) }
            switch channel.read(into: &data, deadline: deadline) {
            case .success(0): eof = true
            case .success: break
            case let .failure(f): return .failure(Failure(f))
            }
        }
    }

    /// Reads a body out of the answer's bytes as they grow, without going over any byte twice;
    /// framing included, the bytes held are bounded by the body limit and the head's.
    private struct BodyReader {
        enum Step { case more, complete, failed(Failure) }

        let maxBodyBytes: Int
        var framing = ResponseBody.none
        var offset = 0
        var decoder = ChunkedDecoder()
        var bytes: [UInt8] = []

        init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

        mutating func start(_ h: ResponseHead, offset: Int) {
            framing = responseBody(h, requestWasHEAD: false)
            self.offset = offset
        }

        mutating func advance(_ data: [UInt8], eof: Bool) -> Step {
            switch framing {
            case .none:
                return .complete
            case let .contentLength(n):
                guard n <= Int64(maxBodyBytes) else { return .failed(.tooLarge(maxBodyBytes)) }
                guard data.count - offset >= Int(n) else { return .more }
                bytes = Array(data[offset..<(offset + Int(n))])
                return .complete
            case .untilClose:
                guard data.count - offset <= maxBodyBytes else { return .failed(.tooLarge(maxBodyBytes)) }
                guard eof else { return .more }
                bytes = Array(data[offset...])
                return .complete
            case .chunked:
                // Chunk framing may cost more bytes than the data it carries; it is bounded too.
                guard data.count - offset <= 2 * maxBodyBytes + HTTPLimits.maxHeadBytes else { return .failed(.tooLarge(maxBodyBytes)) }
                return data.withUnsafeBytes { raw -> Step in
                    while true {
                        let (step, next) = decoder.next(raw, from: offset)
                        offset = next
                        switch step {
                        case let .data(range):
                            bytes += raw[range.start..<range.end]
                            if bytes.count > maxBodyBytes { return .failed(.tooLarge(maxBodyBytes)) }
                        case .needMore: return .more
                        case .done: return .complete
                        case .error: return .failed(.malformed)
                        }
                    }
                }
            }
        }
    }

    private static func cacheControl(_ h: ResponseHead, fields: UnsafeMutablePointer<HeaderField>, data: [UInt8]) -> String? {
        let name = Array("cache-control".utf8)
        var values: [String] = []
        for i in 0..<h.fieldCount {
            let f = fields[i]
            guard f.name.count == name.count,
                  zip(data[f.name.start..<f.name.end], name).allSatisfy({ ($0 | 0x20) == $1 }) else { continue }
            values.append(String(decoding: data[f.value.start..<f.value.end], as: UTF8.self))
        }
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }
}

/// An `https://host[:port][/path]` URL taken apart (no user information, query kept in the
/// path, no fragment); the port defaults to 443.
struct HTTPSLocation: Equatable, Sendable {
    let host: String
    let port: UInt16
    /// `/` at least.
    let path: String

    /// What the Host field and the resolver are given: `host:port`, an IPv6 host in brackets.
    var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    init?(_ url: String) {
        guard url.hasPrefix("https://") else { return nil }
        let rest = url.dropFirst("https://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var path = String(rest.dropFirst(authority.count))
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        guard !authority.isEmpty, !authority.contains("@"), !url.contains("#"),
              !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else { return nil }
        var host = Substring(authority), portText: Substring = "443"
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty, let port = UInt16(portText), port > 0 else { return nil }
        // A name (letters, digits, '-', '.', '_') or an IPv4 address; in brackets, an IPv6 one.
        let bracketed = authority.hasPrefix("[")
        guard host.unicodeScalars.allSatisfy({ c in
            c.isASCII && (bracketed ? (c.properties.isASCIIHexDigit || c == ":" || c == ".")
                                    : (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "-" || c == "." || c == "_"))
        }) else { return nil }
        self.host = String(host)
        self.port = port
        self.path = path
    }
}
