import Foundation
import Glibc
import XCTest
@testable import Gateway

/// The gateway under a service manager: the sd_notify messages it sends, received on a
/// datagram socket the test makes, as systemd's would.
final class ServiceManagerTests: XCTestCase {
    /// A unix datagram socket bound to a fresh path, read with a timeout.
    private final class NotifySocket {
        let path: String
        private let fd: Int32

        init(dir: TempDir) throws {
            path = dir.path("notify")
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard bound == 0 else { throw HarnessError("bind \(path): errno \(errno)") }
            var tv = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// Messages received until `condition` holds on all of them so far, or `seconds` pass.
        func collect(seconds: Double = 10, until condition: ([String]) -> Bool) -> [String] {
            var messages: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline && !condition(messages) {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 { messages.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
            }
            return messages
        }
    }

    func testReadyReloadingAndStoppingAreSaidAtTheirMoments() throws {
        let dir = try TempDir()
        let notify = try NotifySocket(dir: dir)
        let gw = try GatewayHarness(environment: ["NOTIFY_SOCKET": notify.path])
        let ready = notify.collect { $0.contains { $0.hasPrefix("READY=1") } }
        let first = try XCTUnwrap(ready.first { $0.hasPrefix("READY=1") }, "\(ready)")
        XCTAssertTrue(first.contains("MAINPID=\(gw.gateway!.processIdentifier)"), first)
        XCTAssertEqual(try gw.get("/healthz").status, 200, "listening once READY=1 was said")

        gw.signal(SIGHUP)
        let reload = notify.collect { $0.contains { $0.hasPrefix("READY=1") } }
        XCTAssertTrue(reload.first?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") ?? false, "\(reload)")
        XCTAssertTrue(reload.last?.hasPrefix("READY=1") ?? false, "\(reload)")

        gw.signal(SIGTERM)
        let stopping = notify.collect { $0.contains { $0.hasPrefix("STOPPING=1") } }
        XCTAssertTrue(stopping.contains { $0.hasPrefix("STOPPING=1") }, "\(stopping)")
    }

    func testTheWatchdogIsPettedWhileTheLoopsRun() throws {
        let dir = try TempDir()
        let notify = try NotifySocket(dir: dir)
        let gw = try GatewayHarness(workers: 2, environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"])
        let pets = notify.collect { $0.filter { $0 == "WATCHDOG=1" }.count >= 3 }
        XCTAssertGreaterThanOrEqual(pets.filter { $0 == "WATCHDOG=1" }.count, 3, "\(pets)")
        _ = gw
    }

    func testWithoutANotifySocketNothingIsSentAndTheWatchdogIsOff() {
        let quiet = ServiceNotifier(environment: ["WATCHDOG_USEC": "1000000"])
        XCTAssertFalse(quiet.isActive)
        XCTAssertFalse(quiet.send("READY=1"))
        XCTAssertNil(ServiceNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"]).watchdogIntervalMs,
                     "a watchdog meant for another process")
        XCTAssertEqual(ServiceNotifier(environment: ["NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "1000000"]).watchdogIntervalMs, 500)
        XCTAssertFalse(ServiceNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]).isActive)
    }
}
