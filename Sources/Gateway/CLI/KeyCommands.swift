import Foundation
import Glibc
import TokenCore

/// `gateway keys generate|rotate|retire|list`: the keys file (a JWK Set) managed in place.
/// Writes are atomic (temp file, fsync, rename, fsync of the directory), keep mode 0600, and a
/// second writer is refused by an exclusive lock on FILE.lock. A running gateway picks the
/// change up on SIGHUP or by watching the file.
enum KeyCommands {
    static func run(_ verb: String, _ args: ArraySlice<String>) throws -> Int32 {
        switch verb {
        case "generate": return try generate(args)
        case "rotate": return try rotate(args)
        case "retire": return try retire(args)
        case "list": return try list(args)
        default: throw UsageError("unknown keys verb \"\(verb)\"")
        }
    }

    static func generate(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["alg", "keys"])
        guard a.positional.isEmpty else { throw UsageError("keys generate takes no positional arguments") }
        let alg = try TokenCommands.algorithm(a.options["alg"] ?? "HS256")
        let ring = try KeyRing(keys: [KeyRing.generateKey(state: .active, now: unixNow(), algorithm: alg)])
        guard let path = a.options["keys"] else {
            print(ring.jwkSetText(), terminator: "")
            return 0
        }
        return try withLock(path) {
            guard !FileManager.default.fileExists(atPath: path) else { throw CommandFailure("\(path) exists; use keys rotate") }
            try KeyFile.write(ring, to: path)
            print("created \(path) with active key \(ring.activeKey!.kid)")
            return 0
        }
    }

    static func rotate(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["alg", "keys"])
        guard a.positional.isEmpty else { throw UsageError("keys rotate takes no positional arguments") }
        let alg = try TokenCommands.algorithm(a.options["alg"] ?? "HS256")
        let path = try a.require("keys")
        return try withLock(path) {
            let ring = try TokenCommands.loadRing(path)
            let fresh = try KeyFile.rotate(ring, path: path, now: unixNow(), algorithm: alg)
            print("rotated \(path): \(fresh.kid) is active; \(ring.activeKey?.kid ?? "-") verifies tokens issued before")
            return 0
        }
    }

    static func retire(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["keys"])
        guard a.positional.count == 1 else { throw UsageError("keys retire needs exactly one KID") }
        let path = try a.require("keys"), kid = a.positional[0]
        return try withLock(path) {
            let ring = try TokenCommands.loadRing(path)
            guard let i = ring.keys.firstIndex(where: { $0.kid == kid }) else { throw CommandFailure("no key \(kid) in \(path)") }
            guard ring.keys[i].state != .active else { throw CommandFailure("\(kid) is the active key: rotate first, then retire it") }
            var keys = ring.keys
            keys[i].state = .retired
            if keys[i].deactivatedAt == 0 { keys[i].deactivatedAt = unixNow() }
            try KeyFile.write(try KeyRing(keys: keys), to: path)
            print("retired \(kid): tokens it signed are refused from now on")
            return 0
        }
    }

    static func list(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["keys"])
        guard a.positional.isEmpty else { throw UsageError("keys list takes no positional arguments") }
        let ring = try TokenCommands.loadRing(try a.require("keys"))
        let now = unixNow()
        print("kid                  state    alg    age")
        for k in ring.keys {
            let age = k.createdAt > 0 ? duration(now - k.createdAt) : "-"
            print(k.kid.padding(toLength: 20, withPad: " ", startingAt: 0) + " " + k.state.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                  + " " + k.algorithm.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0) + " " + age)
        }
        return 0
    }

    static func duration(_ s: Int64) -> String {
        if s >= 86_400 { return "\(s / 86_400)d\((s % 86_400) / 3600)h" }
        if s >= 3600 { return "\(s / 3600)h\((s % 3600) / 60)m" }
        if s >= 60 { return "\(s / 60)m" }
        return "\(max(0, s))s"
    }

    /// Runs `body` holding an exclusive lock on `path`.lock; refused at once if another holds it.
    static func withLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let lockPath = path + ".lock"
        guard let result = try DurableFile.withExclusiveLock(lockPath, body) else {
            throw CommandFailure("\(path) is being changed by another process (\(lockPath) is locked)")
        }
        return result
    }
}
