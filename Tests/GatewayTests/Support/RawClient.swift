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

/// A blocking TCP client with timeouts that speaks raw bytes, for tests that must control
/// exactly what goes on the wire.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []

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

    deinit { Glibc.close(fd) }

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
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw HarnessError("send failed: errno \(errno)") }
            done += n
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads more bytes into the buffer; false at EOF, timeout or error.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
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

    /// Whether the peer closed the connection (EOF, not a timeout) within the timeout.
    func peerClosed() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { return true }
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
