import CGatewayShims
import Foundation
import Glibc
import Synchronization
import TokenCore

/// The upstream's own about object (`GET /api`), fetched by a background thread every 30 s with
/// a blocking socket and short timeouts — never on an event loop — and cached for `GET /api`.
final class UpstreamAbout: Sendable {
    private let cached = Mutex<JSONValue?>(nil)
    private let target = Mutex<UpstreamTarget?>(nil)
    private let started = Atomic<Bool>(false)

    var current: JSONValue? { cached.withLock { $0 } }

    /// Fetches from `target` from now on (a reload gives the newest); the thread starts once.
    func start(target: UpstreamTarget) {
        self.target.withLock { $0 = target }
        guard !started.exchange(true, ordering: .relaxed) else { return }
        Thread.detachNewThread { [self] in
            while true {
                if let t = self.target.withLock({ $0 }), let v = Self.fetch(t) { cached.withLock { $0 = v } }
                sleep(30)
            }
        }
    }

    /// One blocking `GET /api` (2 s at most); the JSON object, or nil.
    static func fetch(_ target: UpstreamTarget) -> JSONValue? {
        let fetch = BlockingFetch(maxBodyBytes: 256 * 1024, timeoutSeconds: 2)
        guard case let .success(answer) = fetch.get(address: target.address, hostHeader: target.hostPort, path: "/api", tls: target.tls),
              answer.status == 200, let value = try? JSONValue.parse(answer.body), case .object = value else { return nil }
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
