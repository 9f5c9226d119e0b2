import CGatewayShims
import Foundation
import Glibc
import Synchronization

/// Whether the upstreams answer: a background thread tries a TCP connect to each every two
/// seconds (blocking, with a one-second timeout, never on a loop); `GET /readyz` only reads the
/// result. Not ready until the first round has succeeded.
final class Readiness: Sendable {
    private let ready = Atomic<Bool>(false)
    private let detail = Mutex<[String]>(["not probed yet"])
    private let targets = Mutex<[(String, SocketAddress)]>([])
    private let started = Atomic<Bool>(false)

    var isReady: Bool { ready.load(ordering: .relaxed) }
    var problems: [String] { detail.withLock { $0 } }

    func setTargets(_ list: [(String, SocketAddress)]) {
        targets.withLock { $0 = list }
        guard !started.exchange(true, ordering: .relaxed) else { return }
        Thread.detachNewThread { [self] in
            while true {
                let list = targets.withLock { $0 }
                var down: [String] = []
                for (name, address) in list where !Self.reachable(address) { down.append("upstream \(name) does not accept connections") }
                detail.withLock { $0 = down }
                ready.store(down.isEmpty, ordering: .relaxed)
                sleep(2)
            }
        }
    }

    static func reachable(_ address: SocketAddress) -> Bool {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = address
        return withUnsafePointer(to: &addr.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, addr.length) } } == 0
    }
}
