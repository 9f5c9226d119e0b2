import CGatewayShims
import Glibc

/// A resolved socket address (IPv4 or IPv6), resolved once when the configuration loads.
struct SocketAddress: Sendable, CustomStringConvertible {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    var family: Int32 { Int32(storage.ss_family) }

    /// Lends the address as the `sockaddr` pointer and length the socket calls take.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var s = storage
        return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }

    /// Resolves "host:port" or "[v6]:port" (numeric or by name, at load time only: this may block).
    static func resolve(_ hostPort: String) throws(AddressError) -> SocketAddress {
        let (host, port) = try split(hostPort)
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw AddressError(message: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(result) }
        var addr = SocketAddress()
        withUnsafeMutableBytes(of: &addr.storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        addr.length = first.pointee.ai_addrlen
        return addr
    }

    static func split(_ hostPort: String) throws(AddressError) -> (String, UInt16) {
        var host: Substring, portText: Substring
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]"), hostPort[hostPort.index(after: close)...].hasPrefix(":") else {
                throw AddressError(message: "\"\(hostPort)\" is not [ipv6]:port")
            }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            portText = hostPort[hostPort.index(close, offsetBy: 2)...]
        } else {
            guard let colon = hostPort.lastIndex(of: ":") else { throw AddressError(message: "\"\(hostPort)\" has no :port") }
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        }
        guard !host.isEmpty, let port = UInt16(portText), port > 0 else {
            throw AddressError(message: "\"\(hostPort)\" is not host:port with a port 1-65535")
        }
        return (String(host), port)
    }

    var port: UInt16 {
        var storage = self.storage
        return withUnsafeBytes(of: &storage) { raw in
            family == AF_INET6 ? UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
                               : UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
        }
    }

    var description: String {
        var storage = self.storage
        var text = [CChar](repeating: 0, count: 64)
        withUnsafeBytes(of: &storage) { raw in
            if family == AF_INET6 {
                _ = inet_ntop(AF_INET6, raw.baseAddress! + 8, &text, 64)
            } else {
                _ = inet_ntop(AF_INET, raw.baseAddress! + 4, &text, 64)
            }
        }
        let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

struct AddressError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A client's address as compact bytes (held by every connection, idle ones included).
struct PeerAddress {
    var high: UInt64 = 0
    var low: UInt64 = 0
    var isV6 = false

    init() {}

    init(_ storage: sockaddr_storage) {
        var s = storage
        withUnsafeBytes(of: &s) { raw in
            if Int32(raw.load(as: sa_family_t.self)) == AF_INET6 {
                isV6 = true
                high = raw.load(fromByteOffset: 8, as: UInt64.self)
                low = raw.load(fromByteOffset: 16, as: UInt64.self)
            } else {
                low = UInt64(raw.load(fromByteOffset: 4, as: UInt32.self))
            }
        }
    }

    /// Appends the address's text form (as in X-Forwarded-For); false (nothing written) when it
    /// does not fit.
    func append(to buffer: inout ByteBuffer) -> Bool {
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        var raw = (high, low)
        return withUnsafeMutableBytes(of: &text) { out in
            withUnsafeBytes(of: &raw) { addr -> Bool in
                let p = out.baseAddress!.assumingMemoryBound(to: CChar.self)
                if isV6 {
                    _ = inet_ntop(AF_INET6, addr.baseAddress!, p, 48)
                } else {
                    _ = inet_ntop(AF_INET, addr.baseAddress! + 8, p, 48)
                }
                return buffer.append(UnsafeRawBufferPointer(start: out.baseAddress, count: strlen(p)))
            }
        }
    }

    /// The text form, for logs and tests.
    var text: String {
        var b = [UInt8](repeating: 0, count: 64)
        return b.withUnsafeMutableBytes { raw -> String in
            var buf = ByteBuffer(base: raw.baseAddress!, capacity: 64)
            _ = append(to: &buf)
            return String(decoding: buf.readable, as: UTF8.self)
        }
    }
}

enum Socket {
    /// A non-blocking, close-on-exec listening socket with SO_REUSEPORT (one per worker).
    static func listen(_ address: SocketAddress, backlog: Int32 = 4096) throws(SystemError) -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            let e = errno
            Syscall.close(fd)
            throw SystemError(call: "bind", errno: e)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            Syscall.close(fd)
            throw SystemError(call: "listen", errno: e)
        }
        return fd
    }

    /// Accepts one connection (non-blocking, close-on-exec, TCP_NODELAY); nil when none is waiting.
    static func accept(_ listener: Int32, peer: inout PeerAddress) throws(SystemError) -> Int32? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    gw_accept(listener, $0, &len)
                }
            }
            if fd >= 0 {
                setNoDelay(fd)
                peer = PeerAddress(storage)
                return fd
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, ECONNABORTED, EPROTO: return nil
            default: throw SystemError(call: "accept4", errno: errno)  // EMFILE/ENFILE: caller pauses accepting
            }
        }
    }

    /// Starts a non-blocking connect; returns the fd (connection completes when writable).
    static func connect(_ address: SocketAddress) throws(SystemError) -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        setNoDelay(fd)
        if address.withSockAddr({ Glibc.connect(fd, $0, $1) }) != 0 && errno != EINPROGRESS {
            let e = errno
            Syscall.close(fd)
            throw SystemError(call: "connect", errno: e)
        }
        return fd
    }

    /// A blocking connection (off the loops only: readiness probes, the upstream's about object,
    /// the CLI) with send and receive timeouts; nil when it cannot be made.
    static func connectBlocking(_ address: SocketAddress, timeoutSeconds: Int) -> Int32? {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        setTimeouts(fd, seconds: timeoutSeconds)
        guard address.withSockAddr({ Glibc.connect(fd, $0, $1) }) == 0 else { Syscall.close(fd); return nil }
        return fd
    }

    /// A unix stream socket listening at `path`, created mode 0600 (the admin socket).
    static func listenUnix(_ path: String, backlog: Int32 = 16) throws(SystemError) -> Int32 {
        guard let address = UnixSocketAddress(path) else { throw SystemError(call: "bind(unix path too long)", errno: ENAMETOOLONG) }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        let old = umask(0o177)
        let rc = address.withSockAddr { bind(fd, $0, $1) }
        let e = errno
        umask(old)
        guard rc == 0 else { Syscall.close(fd); throw SystemError(call: "bind", errno: e) }
        guard Glibc.listen(fd, backlog) == 0 else { let e = errno; Syscall.close(fd); throw SystemError(call: "listen", errno: e) }
        chmod(path, 0o600)
        return fd
    }

    /// A blocking connection to the unix socket at `path`; nil when nothing listens there.
    static func connectUnix(_ path: String, timeoutSeconds: Int) -> Int32? {
        guard let address = UnixSocketAddress(path) else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        setTimeouts(fd, seconds: timeoutSeconds)
        guard address.withSockAddr({ Glibc.connect(fd, $0, $1) }) == 0 else { Syscall.close(fd); return nil }
        return fd
    }

    /// Send and receive timeouts of a blocking socket.
    static func setTimeouts(_ fd: Int32, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The pending error of a socket (after a non-blocking connect), 0 when connected.
    static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Half-closes the sending side (lingering close: the client reads our answer, no reset).
    static func shutdownWrite(_ fd: Int32) {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit.
    @discardableResult
    static func raiseFileLimit() -> UInt64 {
        var lim = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lim) == 0 else { return 0 }
        lim.rlim_cur = lim.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lim)
        return UInt64(lim.rlim_cur)
    }
}

/// A unix socket's path as a `sockaddr_un`.
struct UnixSocketAddress {
    private var address = sockaddr_un()

    /// nil when the path does not fit.
    init?(_ path: String) {
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    }

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var a = address
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    }
}
