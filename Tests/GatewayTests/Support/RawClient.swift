import CGatewayShims
import Foundation
import Glibc

/// A parsed HTTP response, as a client saw it on the wire.
struct HTTPResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }

    /// The headers the demo upstream reports it received.
    var upstreamHeaders: [(String, String)] {
        ((json?["headers"] as? [[String]]) ?? []).map { ($0[0], $0[1]) }
    }
    func upstreamHeader(_ name: String) -> [String] {
        upstreamHeaders.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}

/// How a test client speaks TLS: whom it trusts and what it offers.
struct TLSClientOptions {
    /// PEM file of the certificate(s) trusted; the gateway's self-signed one in tests.
    var caFile: String
    /// SNI and the name the certificate must carry.
    var host = "localhost"
    var alpn: [String] = ["http/1.1"]
    /// TLS1_2_VERSION etc.; 0 for the library's default.
    var minVersion: Int32 = 0
    var maxVersion: Int32 = 0
}

/// A blocking TCP client with timeouts that speaks raw bytes, for tests that must control
/// exactly what goes on the wire; over TLS (OpenSSL, peer verified) when given options.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var tlsContext: OpaquePointer?
    private var ssl: OpaquePointer?

    init(port: UInt16, timeout: Double = 15) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw HarnessError("connect to \(port) failed: errno \(errno)")
        }
        setTimeout(timeout)
    }

    /// Connects and completes a TLS handshake; throws when the handshake fails.
    convenience init(port: UInt16, tls: TLSClientOptions, timeout: Double = 15) throws {
        try self.init(port: port, timeout: timeout)
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw HarnessError("SSL_CTX_new failed") }
        tlsContext = ctx
        guard SSL_CTX_load_verify_locations(ctx, tls.caFile, nil) == 1 else { throw HarnessError("cannot load \(tls.caFile)") }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        guard gw_tls_ctx_set_versions(ctx, tls.minVersion, tls.maxVersion) == 1 else { throw HarnessError("bad TLS versions") }
        guard let ssl = SSL_new(ctx) else { throw HarnessError("SSL_new failed") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        guard gw_tls_client_set_host(ssl, tls.host) == 1 else { throw HarnessError("cannot set host \(tls.host)") }
        var wire: [UInt8] = []
        for p in tls.alpn { wire.append(UInt8(p.utf8.count)); wire += Array(p.utf8) }
        if !wire.isEmpty { SSL_set_alpn_protos(ssl, wire, UInt32(wire.count)) }
        ERR_clear_error()
        guard SSL_connect(ssl) == 1 else {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(ERR_get_error(), &text, text.count)
            throw HarnessError("TLS handshake failed: \(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        if let tlsContext { SSL_CTX_free(tlsContext) }
        Glibc.close(fd)
    }

    /// The protocol chosen by ALPN ("" when none), and the TLS version ("TLSv1.3").
    var alpnSelected: String {
        guard let ssl else { return "" }
        var p: UnsafePointer<UInt8>?
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        guard let p, n > 0 else { return "" }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(n)), as: UTF8.self)
    }

    var tlsVersion: String { ssl.map { String(cString: SSL_get_version($0)) } ?? "" }

    /// SHA-256 of the certificate the server presented (DER), hex.
    var peerCertificateSHA256: String {
        guard let ssl, let cert = SSL_get1_peer_certificate(ssl) else { return "" }
        defer { X509_free(cert) }
        var md = [UInt8](repeating: 0, count: 32)
        var n: UInt32 = 0
        X509_digest(cert, EVP_sha256(), &md, &n)
        return md.map { String(format: "%02x", $0) }.joined()
    }

    /// One read through TLS when on, else from the socket: bytes, 0 at the end, -1 on error.
    private func io(_ p: UnsafeMutableRawPointer, _ n: Int) -> Int {
        guard let ssl else { return recv(fd, p, n, 0) }
        var done = 0
        let ok = SSL_read_ex(ssl, p, n, &done)
        if ok == 1 { return done }
        let error = SSL_get_error(ssl, ok)
        ERR_clear_error()
        return error == SSL_ERROR_ZERO_RETURN ? 0 : -1
    }

    private func ioWrite(_ p: UnsafeRawPointer, _ n: Int) -> Int {
        guard let ssl else { return Glibc.send(fd, p, n, Int32(MSG_NOSIGNAL)) }
        var done = 0
        if SSL_write_ex(ssl, p, n, &done) == 1 { return done }
        ERR_clear_error()
        return -1
    }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { ioWrite($0.baseAddress! + done, $0.count - done) }
            if n <= 0 { throw HarnessError("send failed: errno \(errno)") }
            done += n
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads more bytes into the buffer; false at EOF, timeout or error.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { io($0.baseAddress!, $0.count) }
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Everything until the peer closes (or the timeout passes).
    func readToEnd() -> [UInt8] {
        while fill() {}
        defer { buffer.removeAll() }
        return buffer
    }

    /// Exactly `n` bytes (a tunnel's echo); throws when the connection ends first.
    func readExactly(_ n: Int) throws -> [UInt8] { try take(n) }

    /// Whether the peer closed the connection (EOF, not a timeout) within the timeout.
    func peerClosed() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { io($0.baseAddress!, $0.count) }
            if n == 0 { return true }
            if n < 0 && ssl != nil { return errno != EAGAIN && errno != EWOULDBLOCK }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    private func line() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 0x0A), i > 0, buffer[i - 1] == 0x0D {
                let l = String(decoding: buffer[0..<(i - 1)], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return l
            }
            guard fill() else { throw HarnessError("connection ended inside a head (have \(buffer.count) bytes)") }
        }
    }

    private func take(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { guard fill() else { throw HarnessError("connection ended inside a body") } }
        defer { buffer.removeFirst(n) }
        return Array(buffer[0..<n])
    }

    /// Reads one response (1xx interim responses are returned too); `headRequest` for HEAD.
    func readResponse(headRequest: Bool = false) throws -> HTTPResponse {
        let status = try line()
        let parts = status.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
            throw HarnessError("bad status line \(status)")
        }
        var headers: [(String, String)] = []
        while true {
            let l = try line()
            if l.isEmpty { break }
            guard let colon = l.firstIndex(of: ":") else { throw HarnessError("bad header line \(l)") }
            headers.append((String(l[..<colon]), l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var r = HTTPResponse(status: code, headers: headers, body: [])
        if headRequest || code < 200 || code == 204 || code == 304 { return r }
        if r.header("transfer-encoding")?.lowercased() == "chunked" {
            while true {
                let sizeLine = try line()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw HarnessError("bad chunk size \(sizeLine)") }
                if size == 0 {
                    while try !line().isEmpty {}
                    break
                }
                r.body += try take(size)
                guard try line().isEmpty else { throw HarnessError("chunk not followed by CRLF") }
            }
        } else if let cl = r.header("content-length").flatMap(Int.init) {
            r.body = try take(cl)
        } else {
            r.body = readToEnd()
        }
        return r
    }
}
