import CGatewayShims
import Foundation
import Glibc
import Synchronization
import TokenCore

/// The upstream's own about object (`GET /api`), fetched by a background thread every 30 s with
/// a blocking socket and short timeouts — never on an event loop — and cached for `GET /api`.
final class UpstreamAbout: Sendable {
    private let cached = Mutex<JSONValue?>(nil)
    private let started = Atomic<Bool>(false)

    var current: JSONValue? { cached.withLock { $0 } }

    /// Starts fetching from `address` (host:port); later calls do nothing.
    func start(address: SocketAddress, host: String) {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        let box = Box(address: address, host: host)
        Thread.detachNewThread { [self] in
            while true {
                if let v = Self.fetch(box.address, host: box.host) { cached.withLock { $0 = v } }
                sleep(30)
            }
        }
    }

    private final class Box: @unchecked Sendable {
        let address: SocketAddress
        let host: String
        init(address: SocketAddress, host: String) { self.address = address; self.host = host }
    }

    /// One blocking `GET /api` with 2 s timeouts; the JSON object, or nil.
    static func fetch(_ address: SocketAddress, host: String) -> JSONValue? {
        guard let socket = Socket.connectBlocking(address, timeoutSeconds: 2) else { return nil }
        defer { socket.close() }
        let request = Array("GET /api HTTP/1.1\r\nHost: \(host)\r\nAccept: application/json\r\nConnection: close\r\n\r\n".utf8)
        guard socket.sendAll(request) else { return nil }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while data.count < 256 * 1024 {
            guard let n = socket.readSome(into: &chunk), n > 0 else { break }
            data += chunk[0..<n]
        }
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 100)
        defer { fields.deallocate() }
        let parsed = data.withUnsafeBytes { parseResponseHead($0, fields: fields, limits: HTTPLimits()) }
        guard case let .complete(head) = parsed, head.status == 200, !head.chunked else { return nil }
        let body = Array(data[head.headLength...].prefix(Int(head.contentLength ?? Int64(data.count))))
        guard let value = try? JSONValue.parse(body), case .object = value else { return nil }
        return value
    }

    /// The cached object with the gateway's `auths` in place of the upstream's.
    func body(auths: [String]) -> [UInt8]? {
        guard case let .object(members)? = current else { return nil }
        var out = members.filter { $0.key != "auths" }
        out.insert(("auths", .array(auths.map { .string($0) })), at: min(1, out.count))
        return JSONValue.object(out).serialized()
    }
}
