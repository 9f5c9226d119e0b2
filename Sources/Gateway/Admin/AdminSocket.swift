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
/// (fsync'd) before "ok" is answered. Each client is served on a thread of its own (at most
/// `maxClients` at once; more are told "error: busy"), and has `clientTimeoutMs` in all to send
/// its line, so a client that connects and stays silent delays no one's reload or revoke.
final class AdminSocket: @unchecked Sendable {
    let path: String
    private let server: Server
    private let lock = NSLock()
    private var clients = 0

    static let maxClients = 16
    static let clientTimeoutMs = 5_000
    static let maxLine = 4096

    /// Where it listens until `publish` (a takeover's new process binds beside the running
    /// gateway's socket and takes the path over only once that one drains).
    private let bindPath: String

    init(path: String, server: Server, temporary: Bool = false) {
        self.path = path
        self.bindPath = temporary ? path + ".new-\(getpid())" : path
        self.server = server
    }

    /// Moves the socket bound beside the path onto it (rename: the path is never absent).
    func publish() throws {
        guard bindPath != path else { return }
        guard rename(bindPath, path) == 0 else { throw StartupError("admin socket \(path): rename failed (errno \(errno))") }
    }

    static func path(for config: GatewayConfig) -> String {
        (config.server.dataDir as NSString).appendingPathComponent("admin.sock")
    }

    func start() throws {
        let listener: Socket
        do {
            listener = try Socket.listenUnix(bindPath)
        } catch {
            throw StartupError("admin socket \(bindPath): \(error)")
        }
        Thread.detachNewThread { [self] in
            while true {
                let c: Socket
                do throws(SystemError) {
                    c = try listener.acceptBlocking()
                } catch {
                    if error.errno == EMFILE || error.errno == ENFILE { usleep(100_000); continue }
                    return
                }
                c.setTimeouts(seconds: Self.clientTimeoutMs / 1000)
                guard self.admit() else {
                    Self.write("error: busy, try again\n", to: c)
                    c.close()
                    continue
                }
                Thread.detachNewThread {
                    self.serve(c)
                    c.close()
                    self.leave()
                }
            }
        }
    }

    private func admit() -> Bool {
        lock.withLock {
            guard clients < Self.maxClients else { return false }
            clients += 1
            return true
        }
    }

    private func leave() { lock.withLock { clients -= 1 } }

    private func serve(_ client: Socket) {
        guard let line = Self.readLine(client, timeoutMs: Self.clientTimeoutMs) else {
            Self.write("error: no command within \(Self.clientTimeoutMs / 1000) s\n", to: client)
            return
        }
        let command = String(decoding: line, as: UTF8.self)
        // A takeover talks on: the listeners go across this connection (Takeover.swift).
        if command == "takeover" { server.handOver(to: client); return }
        Self.write(handle(command) + "\n", to: client)
    }

    /// The first line `client` sends (without its newline), or nil when none comes whole within
    /// `timeoutMs` in all (a trickle of bytes does not extend it) or within `maxLine` bytes.
    static func readLine(_ client: Socket, timeoutMs: Int) -> [UInt8]? {
        var line: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMs) * 1_000_000
        while line.count <= maxLine {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return nil }
            guard client.waitReadable(timeoutMs: Int32((deadline - now) / 1_000_000) + 1) else { return nil }
            // A line ended by the client's orderly close counts; one cut by a reset does not.
            guard let n = client.readSome(into: &chunk) else { return nil }
            guard n > 0 else { return line.isEmpty ? nil : line }
            if let newline = chunk[0..<n].firstIndex(of: 0x0A) {
                line += chunk[0..<newline]
                return line.count <= maxLine ? line : nil
            }
            line += chunk[0..<n]
        }
        return nil
    }

    static func write(_ text: String, to client: Socket) {
        _ = client.sendAll(Array(text.utf8))
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
