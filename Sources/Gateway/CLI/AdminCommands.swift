import CGatewayShims
import Foundation
import Glibc
import TokenCore

/// `gateway revoke`, `gateway reload` and `gateway status`: talk to the running gateway over its admin socket;
/// `revoke` edits the journal directly when no gateway runs (it is read at the next start).
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
        if let answer = send(command, to: AdminSocket.path(for: config)) {
            print(answer)
            return answer.hasPrefix("ok") ? 0 : 1
        }
        // No gateway runs: straight into the journal.
        let journal = RevocationJournal(path: (config.server.dataDir as NSString).appendingPathComponent("revocations.journal"))
        _ = try journal.replay(into: RevocationSet(), now: now)
        try journal.append(user ? .sub : .jti, Array(value.utf8), until: time)
        print("ok (no gateway is running: written to \(journal.path); it applies at the next start)")
        return 0
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
        guard let answer = send(command, to: AdminSocket.path(for: config)) else {
            throw CommandFailure("no gateway answers on \(AdminSocket.path(for: config))")
        }
        print(answer)
        return answer.hasPrefix("ok") ? 0 : 1
    }

    static func loadConfig(_ a: Arguments) throws -> GatewayConfig {
        let path = a.options["config"] ?? "gateway.conf"
        do {
            return try ConfigLoader.load(path: path, environment: ProcessInfo.processInfo.environment).config
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// One command over the admin socket; nil when nothing listens there.
    static func send(_ command: String, to path: String) -> String? {
        guard let socket = Socket.connectUnix(path, timeoutSeconds: 30) else { return nil }
        defer { socket.close() }
        guard socket.sendAll(Array((command + "\n").utf8)) else { return nil }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while answer.count < 8192 {
            guard let n = socket.readSome(into: &chunk), n > 0 else { break }
            if let newline = chunk[0..<n].firstIndex(of: 0x0A) { answer += chunk[0..<newline]; break }
            answer += chunk[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
