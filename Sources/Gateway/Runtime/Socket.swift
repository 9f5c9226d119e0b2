import CGatewayShims
import Glibc

/// A socket, owned by Runtime. Its descriptor is private to this file: connections read, write
/// and half-close through these methods, the event loop watches it through `epollControl` and is
/// the one that closes a registered socket (`EventLoop.close`); code off the loops (the admin
/// socket, readiness probes, the CLI, the demo upstream) closes its blocking sockets with `close`.
struct Socket {
    private let fd: Int32

    fileprivate init(_ fd: Int32) { self.fd = fd }

    /// The slot the event loop files this socket under (its descriptor's number), so events and
    /// timers can find their connection. No I/O can be done through it.
    var slot: Int32 { fd }

    // MARK: non-blocking I/O (on a loop)

    /// Reads once into `buffer`'s free space.
    @inline(__always)
    func read(into buffer: inout ByteBuffer) throws(SystemError) -> IOResult {
        let r = try Syscall.read(fd, buffer.base + buffer.writerIndex, buffer.writableBytes)
        if case let .bytes(n) = r { buffer.writerIndex += n }
        return r
    }

    /// Bytes have arrived that were not read yet (a peek; false on any error).
    func hasUnreadBytes() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
    }

    /// Reads once into `count` bytes at `p`.
    @inline(__always)
    func read(_ p: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        try Syscall.read(fd, p, count)
    }

    /// Sends once from `count` bytes at `p`.
    @inline(__always)
    func write(_ p: UnsafeRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        try Syscall.write(fd, p, count)
    }

    /// Writes `buffer`'s readable bytes until the socket takes no more. Returns the bytes
    /// written, or nil on a write error. A drained buffer is rewound to its start unless
    /// `keepDrained` (the upstream keeps a request head readable for a replay).
    @inline(__always)
    func writeOut(_ buffer: inout ByteBuffer, keepDrained: Bool = false) -> Int? {
        var written = 0
        while !buffer.isEmpty {
            let r: IOResult
            do {
                r = try Syscall.write(fd, buffer.base + buffer.readerIndex, buffer.readableBytes)
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

    /// Half-closes the sending side (lingering close: the client reads our answer, no reset).
    func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// The pending error (after a non-blocking connect), 0 when connected.
    var pendingError: Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }

    /// Adds, changes or removes this socket in the epoll instance `epfd` (EventLoop only).
    func epollControl(_ epfd: Int32, _ op: Int32, mask: UInt32, data: UInt64) -> Int32 {
        gw_epoll_ctl(epfd, op, fd, mask, data)
    }

    /// Closes the descriptor. A socket registered with a loop is closed by `EventLoop.close`.
    func close() {
        Syscall.close(fd)
    }

    // MARK: blocking I/O (off the loops)

    /// Sends all of `bytes`; false when the peer is gone or the send timed out.
    func sendAll(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            guard case let .bytes(n)? = try? Syscall.write(fd, bytes.baseAddress! + done, bytes.count - done) else { return false }
            done += n
        }
        return true
    }

    func sendAll(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { sendAll($0) } }

    // MARK: passing listeners to another process (a takeover)

    /// Sends `message` with the descriptors of `sockets` attached (SCM_RIGHTS); the receiver
    /// gets its own descriptors of the same sockets, and these stay open here.
    func send(_ message: String, passing sockets: [Socket]) -> Bool {
        let bytes = Array(message.utf8), fds = sockets.map(\.fd)
        return gw_send_fds(fd, fds, Int32(fds.count), bytes, bytes.count) == bytes.count
    }

    /// Waits up to `timeoutMs` for a message with descriptors attached (one `recvmsg`, at most
    /// `maxBytes`); the text and the sockets, which the caller now owns.
    func receivePassed(maxSockets: Int, maxBytes: Int = 1024, timeoutMs: Int32) -> (text: String, sockets: [Socket])? {
        guard waitReadable(timeoutMs: timeoutMs) else { return nil }
        var fds = [Int32](repeating: -1, count: maxSockets)
        var count: Int32 = 0
        var data = [UInt8](repeating: 0, count: maxBytes)
        let n = gw_recv_fds(fd, &fds, Int32(maxSockets), &count, &data, data.count)
        let sockets = fds.prefix(Int(count)).map(Socket.init)
        guard n > 0 else { for s in sockets { s.close() }; return nil }
        return (String(decoding: data[0..<n], as: UTF8.self), sockets)
    }

    /// The process at the other end of a unix socket (SO_PEERCRED): its pid and uid.
    var peerCredentials: (pid: pid_t, uid: uid_t)? {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        guard gw_peer_credentials(fd, &pid, &uid) == 0 else { return nil }
        return (pid, uid)
    }

    /// A TCP socket listening on exactly `address` (family, address and port): what a
    /// handed-over descriptor must be.
    func isTCPListener(on address: SocketAddress) -> Bool {
        guard isTCPListener(port: address.port) else { return false }
        var storage = sockaddr_storage()
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &size) } }
        guard named == 0 else { return false }
        return address.withSockAddr { wanted, wantedLength in
            withUnsafeBytes(of: &storage) { got in
                let family = Int32(got.load(as: sa_family_t.self))
                guard family == Int32(wanted.pointee.sa_family) else { return false }
                // IPv4: sin_addr at 4 (4 bytes); IPv6: sin6_addr at 8 (16 bytes).
                let (offset, count) = family == AF_INET ? (4, 4) : (8, 16)
                let w = UnsafeRawPointer(wanted)
                return memcmp(got.baseAddress! + offset, w + offset, count) == 0 && Int(wantedLength) >= offset + count
            }
        }
    }

    /// A TCP socket listening on `port` (what a handed-over descriptor must be).
    func isTCPListener(port: UInt16) -> Bool {
        var accepting: Int32 = 0, type: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0, accepting == 1 else { return false }
        len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0, type == Int32(SOCK_STREAM.rawValue) else { return false }
        var storage = sockaddr_storage()
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &size) } }
        guard named == 0 else { return false }
        return withUnsafeBytes(of: &storage) { raw -> Bool in
            let family = Int32(raw.load(as: sa_family_t.self))
            guard family == AF_INET || family == AF_INET6 else { return false }
            return UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self)) == port
        }
    }

    /// Waits up to `timeoutMs` until the socket is readable (or `writable`, when asked), or has
    /// failed; false on timeout. For threads off the loops (`BlockingFetch`).
    func wait(readable: Bool, writable: Bool, timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(readable ? POLLIN : 0) | Int16(writable ? POLLOUT : 0), revents: 0)
        while true {
            let r = poll(&p, 1, max(0, timeoutMs))
            if r < 0 && errno == EINTR { continue }
            return r > 0
        }
    }

    /// Waits up to `timeoutMs` for bytes to read (or the peer's close); false on timeout.
    func waitReadable(timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&p, 1, timeoutMs)
            if r < 0 && errno == EINTR { continue }
            return r > 0
        }
    }

    /// Reads what is there into `chunk` (blocking, up to the receive timeout): the bytes read, 0
    /// at the peer's orderly close, nil on a timeout or an error (a reset, say: what came before
    /// it is not a complete message).
    func readSome(into chunk: inout [UInt8]) -> Int? {
        let r = chunk.withUnsafeMutableBytes { try? Syscall.read(fd, $0.baseAddress!, $0.count) }
        switch r {
        case let .bytes(n)?: return n
        case .eof?: return 0
        default: return nil
        }
    }

    /// Waits for a connection on a blocking listener (EINTR and aborted connections retried;
    /// TCP_NODELAY set on a TCP one).
    func acceptBlocking() throws(SystemError) -> Socket {
        while true {
            let c = gw_accept_blocking(fd)
            if c >= 0 { Self.setNoDelay(c); return Socket(c) }
            if errno == EINTR || errno == ECONNABORTED { continue }
            throw SystemError(call: "accept4", errno: errno)
        }
    }

    // MARK: making sockets

    private static let streamFlags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

    /// A close-on-exec listening socket with SO_REUSEPORT (one per worker), non-blocking unless
    /// `blocking` (the demo upstream's thread-per-connection listener).
    /// `reusePort`: joins an SO_REUSEPORT group (the workers' listeners); off for a listener
    /// that must be the only one on its address (metrics: binding fails if anything is there).
    static func listen(_ address: SocketAddress, backlog: Int32 = 4096, blocking: Bool = false,
                       reusePort: Bool = true) throws(SystemError) -> Socket {
        let fd = socket(address.family, streamFlags | (blocking ? 0 : Int32(SOCK_NONBLOCK.rawValue)), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0 else { throw failed("bind", closing: fd) }
        guard Glibc.listen(fd, backlog) == 0 else { throw failed("listen", closing: fd) }
        return Socket(fd)
    }

    /// Accepts one connection (non-blocking, close-on-exec, TCP_NODELAY); nil when none is waiting.
    func accept(peer: inout PeerAddress) throws(SystemError) -> Socket? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let c = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { gw_accept(fd, $0, &len) }
            }
            if c >= 0 {
                Self.setNoDelay(c)
                peer = PeerAddress(storage)
                return Socket(c)
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, ECONNABORTED, EPROTO: return nil
            default: throw SystemError(call: "accept4", errno: errno)  // EMFILE/ENFILE: caller pauses accepting
            }
        }
    }

    /// Starts a non-blocking connect (it completes when the socket becomes writable).
    static func connect(_ address: SocketAddress) throws(SystemError) -> Socket {
        let fd = socket(address.family, streamFlags | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        setNoDelay(fd)
        if address.withSockAddr({ Glibc.connect(fd, $0, $1) }) != 0 && errno != EINPROGRESS {
            throw failed("connect", closing: fd)
        }
        return Socket(fd)
    }

    /// A connected pair of non-blocking unix stream sockets (tests drive a loop with them).
    static func pair() throws(SystemError) -> (Socket, Socket) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, streamFlags | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0 else {
            throw SystemError(call: "socketpair", errno: errno)
        }
        return (Socket(fds[0]), Socket(fds[1]))
    }

    /// A blocking connection (off the loops only: readiness probes, the upstream's about object)
    /// with send and receive timeouts; nil when it cannot be made.
    static func connectBlocking(_ address: SocketAddress, timeoutSeconds: Int) -> Socket? {
        let fd = socket(address.family, streamFlags, 0)
        guard fd >= 0 else { return nil }
        setTimeouts(fd, seconds: timeoutSeconds)
        guard address.withSockAddr({ Glibc.connect(fd, $0, $1) }) == 0 else { Syscall.close(fd); return nil }
        setNoDelay(fd)
        return Socket(fd)
    }

    /// A blocking unix stream socket listening at `path`, created mode 0600 (the admin socket).
    static func listenUnix(_ path: String, backlog: Int32 = 16) throws(SystemError) -> Socket {
        guard let address = UnixSocketAddress(path) else { throw SystemError(call: "bind(unix path too long)", errno: ENAMETOOLONG) }
        unlink(path)
        let fd = socket(AF_UNIX, streamFlags, 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        let old = umask(0o177)
        let rc = address.withSockAddr { bind(fd, $0, $1) }
        let e = errno
        umask(old)
        guard rc == 0 else { Syscall.close(fd); throw SystemError(call: "bind", errno: e) }
        guard Glibc.listen(fd, backlog) == 0 else { throw failed("listen", closing: fd) }
        chmod(path, 0o600)
        return Socket(fd)
    }

    /// A blocking connection to the unix socket at `path`; nil when nothing listens there.
    static func connectUnix(_ path: String, timeoutSeconds: Int) throws(SystemError) -> Socket {
        guard let address = UnixSocketAddress(path) else { throw SystemError(call: "connect(unix path too long)", errno: ENAMETOOLONG) }
        let fd = socket(AF_UNIX, streamFlags, 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        setTimeouts(fd, seconds: timeoutSeconds)
        guard address.withSockAddr({ Glibc.connect(fd, $0, $1) }) == 0 else { throw failed("connect", closing: fd) }
        return Socket(fd)
    }

    /// Send and receive timeouts of a blocking socket.
    func setTimeouts(seconds: Int) { Self.setTimeouts(fd, seconds: seconds) }

    private static func setTimeouts(_ fd: Int32, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The error of `call` with its errno, after closing the half-made socket.
    private static func failed(_ call: StaticString, closing fd: Int32) -> SystemError {
        let e = errno
        Syscall.close(fd)
        return SystemError(call: call, errno: e)
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
