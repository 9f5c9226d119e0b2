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

    /// Writes all of `bytes` to a blocking descriptor (files, standard output, off the loops),
    /// retrying short writes and EINTR.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw SystemError(call: "write", errno: n == 0 ? EIO : errno)
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var failure: SystemError?
        bytes.withUnsafeBytes { raw in
            do throws(SystemError) { try writeAll(fd, raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// close ignores EINTR (the descriptor is gone either way on Linux).
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}
