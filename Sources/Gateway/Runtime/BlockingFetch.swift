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

    /// GETs `path` from `address`, with TLS as `tls` says (nil: plain).
    func get(address: SocketAddress, hostHeader: String, path: String, tls: UpstreamTLS?) -> Result<Answer, Failure> {
        let deadline = monotonicNanos() + UInt64(timeoutSeconds) * 1_000_000_000
        guard let socket = Socket.connectBlocking(address, timeoutSeconds: timeoutSeconds) else { return .failure(.connect) }
        defer { socket.close() }
        let buffers = BufferPool(bufferSize: HTTPLimits.bufferBytes, largeSize: HTTPLimits.maxHeadBytes, maxFree: 2)
        var session: TLSSession?
        if let tls {
            guard let s = TLSSession(client: tls.context, host: tls.serverName, buffers: buffers) else {
                return .failure(.tls("cannot start a session for \(tls.serverName)"))
            }
            session = s
            while true {
                switch s.handshake(socket) {
                case .done: break
                case .pending:
                    // A blocking read that came back empty: its receive timeout passed.
                    if monotonicNanos() < deadline { continue }
                    return .failure(.timeout)
                case .failed:
                    return .failure(.tls(s.verifyFailure.map { "certificate refused: \($0)" } ?? "handshake failed"))
                }
                break
            }
        }
        var request = buffers.take()
        defer { buffers.release(request) }
        guard request.append(Array("GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nAccept: application/json\r\nConnection: close\r\n\r\n".utf8)) else {
            return .failure(.malformed)
        }
        while !request.isEmpty {
            let sent: Int?
            if let session { sent = session.write(socket, from: &request) } else { sent = socket.writeOut(&request) }
            guard let sent, sent > 0 || request.isEmpty else { return .failure(.connect) }
            guard monotonicNanos() < deadline else { return .failure(.timeout) }
        }
        return readAnswer(socket, session: session, buffers: buffers, deadline: deadline)
    }

    private func readAnswer(_ socket: Socket, session: TLSSession?, buffers: BufferPool, deadline: UInt64) -> Result<Answer, Failure> {
        var data: [UInt8] = []
        var chunk = buffers.take()
        defer { buffers.release(chunk) }
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 100)
        defer { fields.deallocate() }
        var head: ResponseHead?
        var eof = false
        while true {
            if head == nil {
                let parsed = data.withUnsafeBytes { parseResponseHead($0, fields: fields, limits: HTTPLimits(headerBytes: HTTPLimits.maxHeadBytes)) }
                switch parsed {
                case let .complete(h):
                    // Interim answers (100 Continue) are skipped.
                    if h.status < 200 { data.removeFirst(h.headLength); continue }
                    head = h
                case .error: return .failure(.malformed)
                case .incomplete: if data.count > HTTPLimits.maxHeadBytes { return .failure(.malformed) }
                }
            }
            if let h = head {
                switch bodyIfComplete(h, data: data, eof: eof) {
                case let .success(body?):
                    return .success(Answer(status: h.status, cacheControl: Self.cacheControl(h, fields: fields, data: data), body: body))
                case .success(nil): break
                case let .failure(f): return .failure(f)
                }
            }
            if eof { return .failure(.closed) }
            guard monotonicNanos() < deadline else { return .failure(.timeout) }
            chunk.clear()
            let r: IOResult?
            if let session { r = session.read(socket, into: &chunk) } else { r = try? socket.read(into: &chunk) }
            switch r {
            case .bytes?: data += chunk.readable
            case .eof?: eof = true
            case .wouldBlock?: continue   // the receive timeout passed; the deadline decides
            case nil: return .failure(session == nil ? .closed : .tls("connection failed"))
            }
        }
    }

    /// The body once all of it is in `data`, nil while more is to come.
    private func bodyIfComplete(_ h: ResponseHead, data: [UInt8], eof: Bool) -> Result<[UInt8]?, Failure> {
        let bodyBytes = data.count - h.headLength
        switch responseBody(h, requestWasHEAD: false) {
        case .none:
            return .success([])
        case let .contentLength(n):
            guard n <= Int64(maxBodyBytes) else { return .failure(.tooLarge(maxBodyBytes)) }
            return bodyBytes >= Int(n) ? .success(Array(data[h.headLength..<(h.headLength + Int(n))])) : .success(nil)
        case .untilClose:
            guard bodyBytes <= maxBodyBytes else { return .failure(.tooLarge(maxBodyBytes)) }
            return eof ? .success(Array(data[h.headLength...])) : .success(nil)
        case .chunked:
            var decoder = ChunkedDecoder()
            var body: [UInt8] = []
            return data.withUnsafeBytes { raw in
                var offset = h.headLength
                while true {
                    let (step, next) = decoder.next(raw, from: offset)
                    offset = next
                    switch step {
                    case let .data(range):
                        body += raw[range.start..<range.end]
                        guard body.count <= maxBodyBytes else { return .failure(.tooLarge(maxBodyBytes)) }
                    case .needMore: return .success(nil)
                    case .done: return .success(body)
                    case .error: return .failure(.malformed)
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
