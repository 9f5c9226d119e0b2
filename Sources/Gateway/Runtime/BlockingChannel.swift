import Glibc

/// A connection for the gateway's background threads (never an event loop): a non-blocking
/// socket whose every wait is a poll bounded by a deadline, plain or TLS (chain, host name,
/// SNI, TLS 1.2+), so a peer that answers slowly or a byte at a time cannot hold a thread past
/// the time given. Used by `BlockingFetch` and the Redis client.
final class BlockingChannel {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case connect
        case tls(String)
        case timeout
        case closed

        var description: String {
            switch self {
            case .connect: return "cannot connect"
            case let .tls(why): return "TLS: \(why)"
            case .timeout: return "timed out"
            case .closed: return "the connection closed"
            }
        }
    }

    /// A point on the monotonic clock.
    struct Deadline {
        let end: UInt64
        init(milliseconds: Int) { end = monotonicNanos() + UInt64(max(0, milliseconds)) * 1_000_000 }
        /// Milliseconds left, 0 once passed.
        var leftMs: Int32 {
            let now = monotonicNanos()
            return now >= end ? 0 : Int32(min(UInt64(Int32.max), (end - now) / 1_000_000))
        }
        var passed: Bool { monotonicNanos() >= end }
    }

    private let socket: Socket
    private let session: TLSSession?
    /// Also the TLS session's (which holds it unowned): it lives as long as the channel.
    private let buffers: BufferPool
    private var closed = false

    private init(socket: Socket, session: TLSSession?, buffers: BufferPool) {
        self.socket = socket
        self.session = session
        self.buffers = buffers
    }

    deinit { close() }

    /// Connects to `address` (and shakes hands when `tls` says) before `deadline`.
    static func open(_ address: SocketAddress, tls: UpstreamTLS?, deadline: Deadline) -> Result<BlockingChannel, Failure> {
        guard let socket = try? Socket.connect(address) else { return .failure(.connect) }
        guard socket.wait(readable: false, writable: true, timeoutMs: deadline.leftMs) else { socket.close(); return .failure(.timeout) }
        guard socket.pendingError == 0 else { socket.close(); return .failure(.connect) }
        let pool = BufferPool(bufferSize: HTTPLimits.bufferBytes, largeSize: HTTPLimits.maxHeadBytes, maxFree: 2)
        guard let tls else { return .success(BlockingChannel(socket: socket, session: nil, buffers: pool)) }
        guard let s = TLSSession(client: tls.context, host: tls.serverName, buffers: pool) else {
            socket.close()
            return .failure(.tls("cannot start a session for \(tls.serverName)"))
        }
        let channel = BlockingChannel(socket: socket, session: s, buffers: pool)
        while true {
            switch s.handshake(socket) {
            case .done:
                return .success(channel)
            case .pending:
                guard socket.wait(readable: true, writable: s.hasPendingOutput, timeoutMs: deadline.leftMs) else { return .failure(.timeout) }
            case .failed:
                return .failure(.tls(s.verifyFailure.map { "certificate refused: \($0)" } ?? "handshake failed"))
            }
        }
    }

    /// Writes all of `bytes` before `deadline`.
    func write(_ bytes: [UInt8], deadline: Deadline) -> Failure? {
        var out = buffers.take()
        defer { buffers.release(out) }
        var sent = 0
        while sent < bytes.count || (session?.hasPendingOutput ?? false) {
            if out.isEmpty && sent < bytes.count {
                out.clear()
                let n = min(out.writableBytes, bytes.count - sent)
                _ = bytes[sent..<(sent + n)].withUnsafeBytes { out.append($0) }
                sent += n
            }
            if !out.isEmpty {
                let taken: Int?
                if let session { taken = session.write(socket, from: &out) } else { taken = socket.writeOut(&out) }
                guard taken != nil else { return .closed }
            } else if !(session?.sendPending(socket) ?? true) {
                return .closed
            }
            if out.isEmpty && sent == bytes.count && !(session?.hasPendingOutput ?? false) { return nil }
            guard socket.wait(readable: false, writable: true, timeoutMs: deadline.leftMs) else { return .timeout }
        }
        return nil
    }

    /// Reads what has come (waiting until something has, or `deadline`) and appends it to
    /// `data`: the number of bytes, 0 when the peer has closed.
    func read(into data: inout [UInt8], deadline: Deadline) -> Result<Int, Failure> {
        var chunk = buffers.take()
        defer { buffers.release(chunk) }
        while true {
            chunk.clear()
            let r: IOResult?
            if let session { r = session.read(socket, into: &chunk) } else { r = try? socket.read(into: &chunk) }
            switch r {
            case .bytes?:
                data += chunk.readable
                return .success(chunk.readableBytes)
            case .eof?:
                return .success(0)
            case .wouldBlock?:
                guard socket.wait(readable: true, writable: session?.hasPendingOutput ?? false, timeoutMs: deadline.leftMs) else {
                    return .failure(.timeout)
                }
                _ = session?.sendPending(socket)
            case nil:
                return .failure(session == nil ? .closed : .tls("connection failed"))
            }
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        socket.close()
    }
}
