import CGatewayShims
import Foundation
import Glibc
import TokenCore

/// `gateway revoke`, `gateway reload` and `gateway status`: talk to the running gateway over its admin socket;
/// `revoke` edits the journal directly when no gateway runs (it is read at the next start), and
/// only then: a socket that is there but does not answer is an error, never a reason to write
/// behind a running gateway's back.
enum AdminCommands {
    static func revoke(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["config", "user", "before", "jti", "until"])
        guard a.positional.isEmpty else { throw UsageError("revoke takes no positional arguments") }
        let now = unixNow()
        let user: Bool, value: String, time: Int64
        switch (a.options["user"], a.options["jti"]) {
        case let (name?, nil):
            user = true; value = name; time = try a.int("before", default: now)
        case let (nil, id?):
            // Until when the id must stay refused: by default a day and a half past now, longer
            // than any default token lifetime.
            user = false; value = id; time = try a.int("until", default: now + 129_600)
        default:
            throw UsageError("revoke needs exactly one of --user NAME or --jti ID")
        }
        let config = try loadConfig(a)
        let command = "\(user ? "revoke-user" : "revoke-jti") \(Base64URL.encode(Array(value.utf8))) \(time)"
        let path = AdminSocket.path(for: config)
        switch send(command, to: path) {
        case let .answered(answer):
            print(answer)
            return answer.hasPrefix("ok") ? 0 : 1
        case let .unreachable(why):
            // A gateway may be running: a revocation written behind its back would apply only
            // at its next start, so none is written.
            throw CommandFailure("the gateway at \(path) did not take the revocation (\(why)); nothing was written")
        case .noGateway:
            // No gateway runs: straight into the journal.
            let journal = RevocationJournal(path: (config.server.dataDir as NSString).appendingPathComponent("revocations.journal"))
            _ = try journal.replay(into: RevocationSet(), now: now)
            try journal.append(user ? .sub : .jti, Array(value.utf8), until: time)
            print("ok (no gateway is running: written to \(journal.path); it applies at the next start)")
            return 0
        }
    }

    static func reload(_ args: ArraySlice<String>) throws -> Int32 { try ask("reload", args) }

    /// `gateway status`: workers, keys, revocations, readiness and the bytes of connection
    /// buffers in use and pooled.
    static func status(_ args: ArraySlice<String>) throws -> Int32 { try ask("status", args) }

    /// Sends a command that takes no arguments and prints the answer.
    private static func ask(_ command: String, _ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["config"])
        guard a.positional.isEmpty else { throw UsageError("\(command) takes no positional arguments") }
        let config = try loadConfig(a)
        let path = AdminSocket.path(for: config)
        switch send(command, to: path) {
        case let .answered(answer):
            print(answer)
            return answer.hasPrefix("ok") ? 0 : 1
        case .noGateway:
            throw CommandFailure("no gateway answers on \(path)")
        case let .unreachable(why):
            throw CommandFailure("the gateway at \(path) gave no answer (\(why))")
        }
    }

    static func loadConfig(_ a: Arguments) throws -> GatewayConfig {
        let path = a.options["config"] ?? "gateway.conf"
        do {
            return try ConfigLoader.load(path: path, environment: ProcessInfo.processInfo.environment).config
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    enum Reply {
        case answered(String)
        /// Nothing listens on the socket (no such file, or no one accepting): no gateway runs.
        case noGateway
        /// Something is there but gave no answer (refused access, timed out, closed early).
        case unreachable(String)
    }

    /// One command over the admin socket.
    static func send(_ command: String, to path: String) -> Reply {
        let socket: Socket
        do {
            socket = try Socket.connectUnix(path, timeoutSeconds: 30)
        } catch {
            return error.errno == ENOENT || error.errno == ECONNREFUSED ? .noGateway : .unreachable("\(error)")
        }
        defer { socket.close() }
        guard socket.sendAll(Array((command + "\n").utf8)) else { return .unreachable("the command could not be sent") }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while answer.count < 8192 {
            guard let n = socket.readSome(into: &chunk) else { return .unreachable("no answer: the connection failed or timed out") }
            guard n > 0 else { break }
            if let newline = chunk[0..<n].firstIndex(of: 0x0A) { return .answered(String(decoding: answer + chunk[0..<newline], as: UTF8.self)) }
            answer += chunk[0..<n]
        }
        return .unreachable(answer.isEmpty ? "closed without an answer" : "the answer was cut short")
    }
}
