import CGatewayShims
import Glibc

/// How a connection's bytes meet its socket: a client's, or the gateway's own to an upstream.
/// The HTTP code above it works on plaintext buffers and never calls read or send itself, so
/// TLS (OpenSSL over memory BIOs) slots in here without the parser or the proxy knowing.
enum Transport {
    case plain
    case tls(TLSSession)

    /// `http` or `https`, for X-Forwarded-Proto.
    var scheme: StaticString {
        switch self {
        case .plain: return "http"
        case .tls: return "https"
        }
    }

    /// Reads once into `buffer`'s free space.
    @inline(__always)
    func read(_ socket: Socket, into buffer: inout ByteBuffer) throws(SystemError) -> IOResult {
        switch self {
        case .plain:
            return try socket.read(into: &buffer)
        case let .tls(session):
            guard let r = session.read(socket, into: &buffer) else { throw SystemError.tls }
            return r
        }
    }

    /// Writes `buffer`'s readable bytes as far as the socket takes them; the number of bytes
    /// taken from `buffer`. `keepDrained` leaves them readable below the reader index (a
    /// request head kept for a replay).
    @inline(__always)
    func write(_ socket: Socket, from buffer: inout ByteBuffer, keepDrained: Bool = false) throws(SystemError) -> Int {
        switch self {
        case .plain:
            guard let n = socket.writeOut(&buffer, keepDrained: keepDrained) else { throw SystemError(call: "send", errno: errno) }
            return n
        case let .tls(session):
            guard let n = session.write(socket, from: &buffer, keepDrained: keepDrained) else { throw SystemError.tls }
            return n
        }
    }

    /// Bytes below the connection's input buffer that are ready to read without the socket
    /// becoming readable (a TLS record decrypted only in part).
    var hasBufferedInput: Bool {
        switch self {
        case .plain: return false
        case let .tls(session): return session.hasBufferedInput
        }
    }

    /// Nothing is held below the connection's buffers: no ciphertext, no record read in part, no
    /// handshake under way (a client that has begun one has sent something).
    var isQuiet: Bool {
        switch self {
        case .plain: return true
        case let .tls(session): return session.isQuiet
        }
    }

    /// Bytes taken from the connection's output but not yet on the wire (TLS records).
    var hasPendingOutput: Bool {
        switch self {
        case .plain: return false
        case let .tls(session): return session.hasPendingOutput
        }
    }

    /// Sends what was taken but is not on the wire yet; false on a connection error.
    @inline(__always)
    func sendPending(_ socket: Socket) -> Bool {
        switch self {
        case .plain: return true
        case let .tls(session): return session.sendPending(socket)
        }
    }

    /// Ends the sending side once everything taken is on the wire.
    func shutdownWrite(_ socket: Socket) {
        switch self {
        case .plain: socket.shutdownWrite()
        case let .tls(session): session.shutdownWrite(socket)
        }
    }

    /// Reads and drops whatever arrived (a lingering close); false once the peer has closed or
    /// the connection failed.
    func discardInput(_ socket: Socket, scratch: inout ByteBuffer?) -> Bool {
        var bytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let r = withUnsafeMutableBytes(of: &bytes) { raw -> IOResult? in
            if let b = scratch {
                scratch!.clear()
                return try? socket.read(b.base, b.capacity)
            }
            return try? socket.read(raw.baseAddress!, raw.count)
        }
        switch r {
        case .bytes?, .wouldBlock?: return true
        default: return false
        }
    }

}
