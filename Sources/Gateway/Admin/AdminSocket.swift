import CGatewayShims
import Foundation
import Glibc
import TokenCore

/// The admin interface: a unix socket (mode 0600, in data_dir) that only the gateway's own user
/// can reach — never the public port. One command a connection, one line each way:
///   revoke-user <base64url name> <cut-off unix seconds>
///   revoke-jti <base64url id> <until unix seconds>
///   reload
///   status
/// Revocations go into the shared set (every worker sees them at once) and into the journal
/// (fsync'd) before "ok" is answered.
final class AdminSocket: @unchecked Sendable {
    let path: String
    private let server: Server

    init(path: String, server: Server) {
        self.path = path
        self.server = server
    }

    static func path(for config: GatewayConfig) -> String {
        (config.server.dataDir as NSString).appendingPathComponent("admin.sock")
    }

    func start() throws {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartupError("admin socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw StartupError("admin socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: bytes) }
        let old = umask(0o177)  // created 0600
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        umask(old)
        guard rc == 0, listen(fd, 16) == 0 else { close(fd); throw StartupError("admin socket \(path): \(String(cString: strerror(errno)))") }
        chmod(path, 0o600)
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { if errno == EINTR { continue }; return }
                self.serve(c)
                close(c)
            }
        }
    }

    private func serve(_ fd: Int32) {
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 4096, read(fd, &byte, 1) == 1, byte != 0x0A { line.append(byte) }
        let answer = handle(String(decoding: line, as: UTF8.self)) + "\n"
        _ = Array(answer.utf8).withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
    }

    func handle(_ command: String) -> String {
        let parts = command.split(separator: " ").map(String.init)
        switch parts.first {
        case "revoke-user"?, "revoke-jti"?:
            guard parts.count == 3, let value = Base64URL.decode(parts[1]), !value.isEmpty, let time = Int64(parts[2]) else {
                return "error: usage: \(parts[0]) <base64url> <unix seconds>"
            }
            return server.revoke(user: parts[0] == "revoke-user", value, time)
        case "reload"?:
            return server.reload(reason: "admin reload")
        case "status"?:
            return server.status()
        default:
            return "error: unknown command"
        }
    }
}
