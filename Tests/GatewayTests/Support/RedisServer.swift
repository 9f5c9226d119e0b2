import Foundation
import Glibc
import XCTest

/// A real `redis-server` (Debian's) on a free loopback port, in a temporary directory, saving
/// nothing; stopped by its pid when released.
final class RedisServer {
    let port: UInt16
    let dir: TempDir
    private let process = Process()

    /// `arguments`: more of redis-server's options (`--requirepass`, the TLS files...); `tls`:
    /// serve TLS only, on `port`.
    init(arguments: [String] = [], tls: Bool = false) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else {
            throw XCTSkip("redis-server is not installed (deploy/install-deps.sh installs it)")
        }
        port = try freePort()
        dir = try TempDir()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        let ports = tls ? ["--port", "0", "--tls-port", String(port)] : ["--port", String(port)]
        process.arguments = ports + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.url.path,
                                     "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try waitForPort(port)
    }

    deinit { stop() }

    var pid: Int32 { process.processIdentifier }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
