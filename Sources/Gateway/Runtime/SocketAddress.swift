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
        guard isV6 else { return appendIPv4(to: &buffer) }
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        var raw = (high, low)
        return withUnsafeMutableBytes(of: &text) { out in
            withUnsafeBytes(of: &raw) { addr -> Bool in
                let p = out.baseAddress!.assumingMemoryBound(to: CChar.self)
                _ = inet_ntop(AF_INET6, addr.baseAddress!, p, 48)
                return buffer.append(UnsafeRawBufferPointer(start: out.baseAddress, count: strlen(p)))
            }
        }
    }

    /// Dotted decimal, written digit by digit (inet_ntop formats through printf, on every
    /// proxied request).
    private func appendIPv4(to buffer: inout ByteBuffer) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 16, alignment: 1) { scratch in
            var text = ByteBuffer(base: scratch.baseAddress!, capacity: 16)
            for i in 0..<4 {
                if i > 0 { text.appendWithinRoom(".") }
                let octet = Int((low >> (8 * UInt64(i))) & 0xFF)
                if octet >= 100 { _ = text.append(byte: UInt8(48 + octet / 100)) }
                if octet >= 10 { _ = text.append(byte: UInt8(48 + octet / 10 % 10)) }
                _ = text.append(byte: UInt8(48 + octet % 10))
            }
            return buffer.append(text.readable)
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
