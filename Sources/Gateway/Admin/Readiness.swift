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
        guard let socket = Socket.connectBlocking(address, timeoutSeconds: 1) else { return false }
        socket.close()
        return true
    }
}
