import CGatewayShims
import Glibc

/// A failed system call: its name and errno, for logs (never a crash: a worker survives it).
struct SystemError: Error, CustomStringConvertible {
    let call: StaticString
    let errno: Int32
    var description: String { errno == 0 ? "\(call) failed" : "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }

    /// A TLS session that failed (an alert, a protocol error, or its socket's).
    static let tls = SystemError(call: "tls", errno: 0)
}

/// The outcome of a non-blocking read or write.
enum IOResult: Equatable {
    case bytes(Int)
    case wouldBlock
    /// Read returned 0: the peer closed its side.
    case eof
}

/// Thin wrappers in the swift-nio manner: EINTR retried, EAGAIN mapped to `.wouldBlock`,
/// EBADF/EFAULT trap (a bug of ours, not a condition), anything else thrown with errno.
enum Syscall {
    @inline(__always)
    static func check(_ call: StaticString, _ result: Int) throws(SystemError) -> Int {
        if result >= 0 { return result }
        let e = errno
        precondition(e != EBADF && e != EFAULT, "\(call) on a bad descriptor or address: a bug")
        throw SystemError(call: call, errno: e)
    }

    @inline(__always)
    static func read(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) throws(SystemError) -> IOResult {
        while true {
            let r = Glibc.read(fd, p, n)
            if r > 0 { return .bytes(r) }
            if r == 0 { return .eof }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default: _ = try check("read", r)
            }
        }
    }

    @inline(__always)
    static func write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) throws(SystemError) -> IOResult {
        while true {
            let r = Glibc.send(fd, p, n, Int32(MSG_NOSIGNAL))
            if r >= 0 { return .bytes(r) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default: _ = try check("send", r)
            }
        }
    }

    /// Writes `buffer`'s readable bytes until the socket takes no more. Returns the bytes
    /// written, or nil on a write error. A drained buffer is rewound to its start unless
    /// `keepDrained` (the upstream keeps a request head readable for a replay).
    @inline(__always)
    static func writeOut(_ fd: Int32, _ buffer: inout ByteBuffer, keepDrained: Bool = false) -> Int? {
        var written = 0
        while !buffer.isEmpty {
            let r: IOResult
            do {
                r = try write(fd, buffer.base + buffer.readerIndex, buffer.readableBytes)
            } catch {
                return nil
            }
            guard case let .bytes(n) = r else { break }
            written += n
            buffer.readerIndex += n
            if buffer.readerIndex == buffer.writerIndex && !keepDrained {
                buffer.readerIndex = 0
                buffer.writerIndex = 0
            }
        }
        return written
    }

    /// close ignores EINTR (the descriptor is gone either way on Linux).
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}
