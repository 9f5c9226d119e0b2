import CGatewayShims
import Foundation
import Glibc
import TokenCore

/// `gateway demo-upstream --listen ADDR`, also started by `run --demo`: an HTTP/1.1 server that
/// answers every request with JSON describing what it saw — method, target, the identity the
/// gateway vouched for (X-Forwarded-User), every header, and the body's length and SHA-256 — so
/// the whole flow shows at once. A few paths exist to exercise a proxy:
///   .../bytes/N        N bytes of a fixed pattern (Content-Length)
///   .../chunked/N      N bytes of the pattern, chunked
///   .../close/N        N bytes of the pattern, delimited by closing the connection
///   ?delay_ms=N        wait N ms (at most 120000) before answering
///   Upgrade: websocket 101, then echoes every byte back
/// One thread per connection with blocking sockets: simple, and never part of the gateway itself.
enum DemoUpstream {
    static func start(listen hostPort: String) throws {
        let address = try SocketAddress.resolve(hostPort)
        let listener = try Socket.listen(address, blocking: true)
        Thread.detachNewThread { acceptLoop(listener) }
    }

    /// Runs in the foreground (the `demo-upstream` verb).
    static func runForever(listen hostPort: String) throws -> Never {
        try start(listen: hostPort)
        printError("demo upstream listening on \(hostPort)")
        while true { sleep(3600) }
    }

    private static func acceptLoop(_ listener: Socket) {
        while true {
            guard let client = try? listener.acceptBlocking() else { usleep(10_000); continue }
            Thread.detachNewThread { serve(client) }
        }
    }

    static let pattern: [UInt8] = Array("0123456789abcdefghijklmnopqrstuvwxyz\n".utf8)

    /// Byte `i` of the fixed pattern the bytes/chunked/close paths send.
    static func patternBytes(_ n: Int) -> [UInt8] {
        (0..<n).map { pattern[$0 % pattern.count] }
    }

    private static func serve(_ socket: Socket) {
        defer { socket.close() }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var have = 0
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 200)
        defer { fields.deallocate() }
        let limits = HTTPLimits(requestLineBytes: 16_384, headerBytes: 128 * 1024, maxHeaderFields: 200)
        while true {
            // Read until a complete head.
            var head: RequestHead?
            while head == nil {
                let parsed = buffer.withUnsafeBytes { parseRequestHead(UnsafeRawBufferPointer(rebasing: $0[0..<have]), fields: fields, limits: limits) }
                switch parsed {
                case let .complete(h): head = h
                case .error: _ = send(socket, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); return
                case .incomplete:
                    guard have < buffer.count else { return }
                    let n = buffer.withUnsafeMutableBytes { receive(socket, $0.baseAddress! + have, $0.count - have) }
                    if n <= 0 { return }
                    have += n
                }
            }
            guard let h = head else { return }
            let text = { (r: ByteRange) in String(decoding: buffer[r.start..<r.end], as: UTF8.self) }
            let method = text(h.method), target = text(h.target)
            var headers: [(String, String)] = []
            for i in 0..<h.fieldCount { headers.append((text(fields[i].name), text(fields[i].value))) }
            // Body: Content-Length or chunked, hashed as it streams.
            var consumed = h.headLength
            var bodyLength = 0
            let digest = EVP_MD_CTX_new()
            EVP_DigestInit_ex(digest, EVP_sha256(), nil)
            defer { EVP_MD_CTX_free(digest) }
            func feed(_ range: Range<Int>) {
                buffer.withUnsafeBytes { _ = EVP_DigestUpdate(digest, $0.baseAddress! + range.lowerBound, range.count) }
                bodyLength += range.count
            }
            func readMore() -> Bool {
                if consumed > 0 {
                    buffer.replaceSubrange(0..<have - consumed, with: buffer[consumed..<have])
                    have -= consumed
                    consumed = 0
                }
                guard have < buffer.count else { return false }
                let n = buffer.withUnsafeMutableBytes { receive(socket, $0.baseAddress! + have, $0.count - have) }
                if n <= 0 { return false }
                have += n
                return true
            }
            if h.chunked {
                var decoder = ChunkedDecoder()
                loop: while true {
                    let (step, next) = buffer.withUnsafeBytes { decoder.next(UnsafeRawBufferPointer(rebasing: $0[0..<have]), from: consumed) }
                    switch step {
                    case let .data(r): feed(r.start..<r.end); consumed = next
                    case .needMore: consumed = next; if !readMore() { return }
                    case .done: consumed = next; break loop
                    case .error: _ = send(socket, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); return
                    }
                }
            } else if var remaining = h.contentLength {
                while remaining > 0 {
                    if have == consumed { if !readMore() { return } }
                    let n = min(Int(remaining), have - consumed)
                    feed(consumed..<consumed + n)
                    consumed += n
                    remaining -= Int64(n)
                }
            }
            var md = [UInt8](repeating: 0, count: 32)
            var mdLen: UInt32 = 0
            EVP_DigestFinal_ex(digest, &md, &mdLen)
            buffer.replaceSubrange(0..<have - consumed, with: buffer[consumed..<have])
            have -= consumed

            if let delay = query(target, "delay_ms").flatMap(Int.init), delay > 0 { usleep(UInt32(min(delay, 120_000)) * 1000) }
            let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
            let parts = path.split(separator: "/")
            let count = parts.count >= 2 ? Int(parts[parts.count - 1]) : nil

            if h.upgradeWebSocket {
                _ = send(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                if have > 0 { _ = sendAll(socket, Array(buffer[0..<have])) }
                echoForever(socket)
                return
            }
            if let n = count, n >= 0, n <= 512 << 20, parts.count >= 2 {
                switch parts[parts.count - 2] {
                case "bytes":
                    _ = send(socket, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(n)\r\n\r\n")
                    if !h.isHEAD { sendPattern(socket, n, chunked: false) }
                    if !h.keepAlive { return }
                    continue
                case "chunked":
                    _ = send(socket, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                    if !h.isHEAD { sendPattern(socket, n, chunked: true) }
                    if !h.keepAlive { return }
                    continue
                case "close":
                    _ = send(socket, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
                    if !h.isHEAD { sendPattern(socket, n, chunked: false) }
                    return
                default:
                    break
                }
            }
            var body = JSONWriter(capacity: 512)
            body.raw("{\"method\":"); body.string(method)
            body.raw(",\"path\":"); body.string(target)
            body.raw(",\"user\":")
            if let user = headers.first(where: { $0.0.lowercased() == "x-forwarded-user" })?.1 { body.string(user) } else { body.raw("null") }
            body.raw(",\"body_bytes\":"); body.int(Int64(bodyLength))
            body.raw(",\"body_sha256\":"); body.string(Crypto.hex(md))
            body.raw(",\"headers\":[")
            for (i, (name, value)) in headers.enumerated() {
                if i > 0 { body.raw(",") }
                body.raw("["); body.string(name); body.raw(","); body.string(value); body.raw("]")
            }
            body.raw("]}\n")
            let headText = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.bytes.count)\r\n"
                + (h.keepAlive ? "" : "Connection: close\r\n") + "\r\n"
            _ = send(socket, headText)
            if !h.isHEAD { _ = sendAll(socket, body.bytes) }
            if !h.keepAlive { return }
        }
    }

    private static func query(_ target: String, _ name: String) -> String? {
        guard let q = target.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 && kv[0] == name { return String(kv[1]) }
        }
        return nil
    }

    private static func sendPattern(_ socket: Socket, _ n: Int, chunked: Bool) {
        let block = patternBytes(pattern.count * 1771)  // 65527 bytes: a whole number of patterns
        var sent = 0
        while sent < n {
            let k = min(block.count, n - sent)
            if chunked { _ = send(socket, String(k, radix: 16) + "\r\n") }
            guard sendAll(socket, Array(block[0..<k])) else { return }
            if chunked { _ = send(socket, "\r\n") }
            sent += k
        }
        if chunked { _ = send(socket, "0\r\n\r\n") }
    }

    private static func echoForever(_ socket: Socket) {
        var buf = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buf.withUnsafeMutableBytes { receive(socket, $0.baseAddress!, $0.count) }
            if n <= 0 { return }
            guard sendAll(socket, Array(buf[0..<n])) else { return }
        }
    }

    @discardableResult
    private static func send(_ socket: Socket, _ text: String) -> Bool { sendAll(socket, Array(text.utf8)) }

    private static func sendAll(_ socket: Socket, _ bytes: [UInt8]) -> Bool { socket.sendAll(bytes) }

    /// A blocking read: the bytes read, 0 at the peer's close or an error.
    private static func receive(_ socket: Socket, _ p: UnsafeMutableRawPointer, _ count: Int) -> Int {
        guard case let .bytes(n)? = try? socket.read(p, count) else { return 0 }
        return n
    }
}
