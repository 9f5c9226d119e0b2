import Foundation
import Glibc

/// A real keep-alive HTTP/1.1 upstream (no WebSocket) that parses every request on every
/// connection as a strict server would, Content-Length and chunked bodies included, and records
/// each one: the requests a gateway let through, a smuggled one among them if it did. How it
/// answers is up to the test (`answer`), including answers a well-behaved server never gives.
final class RecordingUpstream: @unchecked Sendable {
    struct Request {
        let connection: Int
        let method: String
        let target: String
        let headers: [(String, String)]
        let body: [UInt8]

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    /// How one request is answered.
    struct Answer {
        var bytes: [UInt8]
        /// Sent right after the head, before the body is read (which is then read and dropped).
        var beforeBody = false
        /// Sent `strayAfterMs` after the answer, on the same connection: bytes no request asked for.
        var stray: [UInt8] = []
        var strayAfterMs = 50

        init(_ text: String, beforeBody: Bool = false, stray: String = "", strayAfterMs: Int = 50) {
            bytes = Array(text.utf8)
            self.beforeBody = beforeBody
            self.stray = Array(stray.utf8)
            self.strayAfterMs = strayAfterMs
        }

        /// 200 with `body`, Content-Length framed.
        static func ok(_ body: String) -> Answer {
            Answer("HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        }
    }

    let port: UInt16
    private let fd: Int32
    private let answer: @Sendable (Request) -> Answer
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var connections = 0
    private var straysSent = 0

    /// `answer` is asked for each request once its head is read (its body is empty then for an
    /// answer sent before the body); the default echoes the target.
    init(answer: @escaping @Sendable (Request) -> Answer = { .ok("seen \($0.target)") }) throws {
        self.answer = answer
        (fd, port) = loopbackSocket(listenBacklog: 128, reuseAddress: true)
        Thread.detachNewThread { [self] in self.acceptLoop() }
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    /// Every request parsed so far, in order.
    var requests: [Request] { lock.withLock { recorded } }
    var targets: [String] { requests.map(\.target) }
    var connectionCount: Int { lock.withLock { connections } }
    var strayCount: Int { lock.withLock { straysSent } }

    /// Waits until `condition` holds (polling), up to `seconds`.
    func waitFor(seconds: Double = 5, _ condition: (RecordingUpstream) -> Bool) -> Bool {
        waitUntil(seconds: seconds) { condition(self) }
    }

    private func acceptLoop() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            let number = lock.withLock { connections += 1; return connections }
            Thread.detachNewThread { [self] in self.serve(c, number: number) }
        }
    }

    private func serve(_ c: Int32, number: Int) {
        defer { close(c) }
        var reader = Reader(fd: c)
        while let head = reader.head() {
            let lines = head.components(separatedBy: "\r\n")
            let parts = lines[0].split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 3 else { return }
            var headers: [(String, String)] = []
            for line in lines.dropFirst() where !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { return }
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            let bare = Request(connection: number, method: String(parts[0]), target: String(parts[1]), headers: headers, body: [])
            let reply = answer(bare)
            if reply.beforeBody { guard send(c, reply.bytes) else { return } }
            guard let body = reader.body(bare) else { return }
            let request = Request(connection: number, method: bare.method, target: bare.target, headers: headers, body: body)
            lock.withLock { recorded.append(request) }
            if !reply.beforeBody { guard send(c, reply.bytes) else { return } }
            if !reply.stray.isEmpty {
                usleep(UInt32(reply.strayAfterMs * 1000))
                guard send(c, reply.stray) else { return }
                lock.withLock { straysSent += 1 }
            }
        }
    }

    private func send(_ c: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// Buffered reads of one connection: heads up to 256 KiB, bodies by their framing.
    private struct Reader {
        let fd: Int32
        var buffer: [UInt8] = []

        mutating func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { return false }
            buffer += chunk[0..<n]
            return true
        }

        mutating func head() -> String? {
            while true {
                if let end = find([13, 10, 13, 10]) {
                    let text = String(decoding: buffer[0..<end], as: UTF8.self)
                    buffer.removeFirst(end + 4)
                    return text
                }
                guard buffer.count < 262_144, fill() else { return nil }
            }
        }

        mutating func line() -> String? {
            while true {
                if let end = find([13, 10]) {
                    let text = String(decoding: buffer[0..<end], as: UTF8.self)
                    buffer.removeFirst(end + 2)
                    return text
                }
                guard fill() else { return nil }
            }
        }

        mutating func take(_ n: Int) -> [UInt8]? {
            while buffer.count < n { guard fill() else { return nil } }
            defer { buffer.removeFirst(n) }
            return Array(buffer[0..<n])
        }

        mutating func body(_ r: Request) -> [UInt8]? {
            if r.header("transfer-encoding")?.lowercased() == "chunked" {
                var body: [UInt8] = []
                while true {
                    guard let sizeLine = line(), let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else { return nil }
                    if size == 0 {
                        while let l = line(), !l.isEmpty {}
                        return body
                    }
                    guard let data = take(size), line() == "" else { return nil }
                    body += data
                }
            }
            if let length = r.header("content-length").flatMap(Int.init) { return take(length) }
            return []
        }

        private func find(_ pattern: [UInt8]) -> Int? {
            guard buffer.count >= pattern.count else { return nil }
            var i = 0
            while i <= buffer.count - pattern.count {
                if buffer[i] == pattern[0] && Array(buffer[i..<(i + pattern.count)]) == pattern { return i }
                i += 1
            }
            return nil
        }
    }
}
