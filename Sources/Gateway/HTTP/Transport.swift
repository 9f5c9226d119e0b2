import CGatewayShims
import Glibc

/// How a client connection's bytes meet its socket. The HTTP/1.1 code above it works on
/// plaintext buffers and never calls read or send itself, so TLS (OpenSSL over memory BIOs)
/// slots in here without the parser or the proxy knowing.
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
    func read(_ fd: Int32, into buffer: inout ByteBuffer) throws(SystemError) -> IOResult {
        switch self {
        case .plain:
            let r = try Syscall.read(fd, buffer.base + buffer.writerIndex, buffer.writableBytes)
            if case let .bytes(n) = r { buffer.writerIndex += n }
            return r
        case let .tls(session):
            guard let r = session.read(fd, into: &buffer) else { throw SystemError.tls }
            return r
        }
    }

    /// Writes `buffer`'s readable bytes as far as the socket takes them; the number of bytes
    /// taken from `buffer`.
    @inline(__always)
    func write(_ fd: Int32, from buffer: inout ByteBuffer) throws(SystemError) -> Int {
        switch self {
        case .plain:
            guard let n = Syscall.writeOut(fd, &buffer) else { throw SystemError(call: "send", errno: errno) }
            return n
        case let .tls(session):
            guard let n = session.write(fd, from: &buffer) else { throw SystemError.tls }
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

    /// Bytes taken from the connection's output but not yet on the wire (TLS records).
    var hasPendingOutput: Bool {
        switch self {
        case .plain: return false
        case let .tls(session): return session.hasPendingOutput
        }
    }

    /// Sends what was taken but is not on the wire yet; false on a connection error.
    @inline(__always)
    func sendPending(_ fd: Int32) -> Bool {
        switch self {
        case .plain: return true
        case let .tls(session): return session.sendPending(fd)
        }
    }

    /// Ends the sending side once everything taken is on the wire.
    func shutdownWrite(_ fd: Int32) {
        switch self {
        case .plain: Socket.shutdownWrite(fd)
        case let .tls(session): session.shutdownWrite(fd)
        }
    }

    /// Reads and drops whatever arrived (a lingering close); false once the peer has closed or
    /// the connection failed.
    func discardInput(_ fd: Int32, scratch: inout ByteBuffer?) -> Bool {
        var bytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let r = withUnsafeMutableBytes(of: &bytes) { raw -> IOResult? in
            if let b = scratch {
                scratch!.clear()
                return try? Syscall.read(fd, b.base, b.capacity)
            }
            return try? Syscall.read(fd, raw.baseAddress!, raw.count)
        }
        switch r {
        case .bytes?, .wouldBlock?: return true
        default: return false
        }
    }

}
