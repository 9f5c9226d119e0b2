import Foundation
import Glibc
import TokenCore

/// Where the signing keys come from: the configured secret, a JWK Set file, or one created in
/// data_dir on first start; and which keys retire on their own.
enum SigningKeys {
    /// The signing keys: the configured secret, else the configured JWK Set file, else a keys
    /// file in data_dir, created with a random key on first start (mode 0600).
    static func load(_ config: GatewayConfig, log: LogWriter) throws -> KeyRing {
        let ring = try read(config, log: log)
        guard ring.activeKey != nil else { throw StartupError("the keys have no active key: exactly one must have state \"active\"") }
        return config.tokens.autoRetire ? autoRetired(ring, config: config, log: log) : ring
    }

    /// The longest lifetime any token of this configuration can have, plus the leeway.
    static func longestLifetime(_ config: GatewayConfig) -> Int64 {
        max(config.tokens.refreshTTLSeconds, config.tokens.accessTTLSeconds, config.profiles.envelope ? config.profiles.envelopeRefreshTTLSeconds : 0)
            + config.tokens.leewaySeconds
    }

    /// `verify` keys deactivated longer ago than the longest token lifetime are retired (in
    /// memory: no token they signed can still be valid, so nothing should verify with them).
    static func autoRetired(_ ring: KeyRing, config: GatewayConfig, log: LogWriter) -> KeyRing {
        let now = Int64(Date().timeIntervalSince1970), limit = longestLifetime(config)
        var keys = ring.keys
        var changed = false
        for i in keys.indices where keys[i].state == .verify && keys[i].deactivatedAt > 0 && now - keys[i].deactivatedAt > limit {
            keys[i].state = .retired
            changed = true
            log.submit("key \(keys[i].kid) retired automatically: inactive for longer than the longest token lifetime (\(limit) s)")
        }
        return changed ? ((try? KeyRing(keys: keys)) ?? ring) : ring
    }

    /// The keys file the configuration names (nil when a configured secret is used).
    static func path(_ config: GatewayConfig) -> String? {
        guard config.tokens.secret.isEmpty else { return nil }
        return config.tokens.keysFile.isEmpty ? (config.server.dataDir as NSString).appendingPathComponent("keys.json") : config.tokens.keysFile
    }

    static func read(_ config: GatewayConfig, log: LogWriter) throws -> KeyRing {
        let t = config.tokens
        if !t.secret.isEmpty {
            do {
                return try KeyRing.single(secret: Array(t.secret.utf8), kid: t.kid.isEmpty ? nil : t.kid)
            } catch {
                throw StartupError("api.auth.jwt.secret: \(error)")
            }
        }
        let path = t.keysFile.isEmpty ? (config.server.dataDir as NSString).appendingPathComponent("keys.json") : t.keysFile
        if !FileManager.default.fileExists(atPath: path) {
            guard t.keysFile.isEmpty else { throw StartupError("api.auth.jwt.keys_file \(path) does not exist") }
            try KeyFile.create(path: path)
            log.submit("created a new signing key in \(path) (mode 0600): no secret or keys file was configured")
        }
        return try KeyFile.read(path: path)
    }
}

/// Reading and writing the JWK Set keys file.
enum KeyFile {
    static func read(path: String) throws -> KeyRing {
        if let problem = FileTrust.problem(path) { throw StartupError("keys file refused: \(problem)") }
        guard let data = FileManager.default.contents(atPath: path) else { throw StartupError("cannot read keys file \(path)") }
        do {
            return try KeyRing.fromJWKSet([UInt8](data))
        } catch {
            throw StartupError("keys file \(path): \(error)")
        }
    }

    /// Adds a new active key to `ring`, demotes the old active one to `verify`, writes `path`.
    /// The caller holds the file's lock.
    @discardableResult
    static func rotate(_ ring: KeyRing, path: String, now: Int64, algorithm: JWSAlgorithm = .hs256) throws -> Key {
        var keys = ring.keys.map { key -> Key in
            var k = key
            if k.state == .active { k.state = .verify; k.deactivatedAt = now }
            return k
        }
        let fresh = KeyRing.generateKey(state: .active, now: now, algorithm: algorithm)
        keys.append(fresh)
        try write(try KeyRing(keys: keys), to: path)
        return fresh
    }

    /// Writes a new keys file holding one random active key: created 0600, fsync'd, renamed in.
    static func create(path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let ring = try KeyRing(keys: [KeyRing.generateKey(state: .active, now: Int64(Date().timeIntervalSince1970))])
        try write(ring, to: path)
    }

    /// Writes `ring` as the keys file at `path`, atomically (0600, fsync'd, renamed in).
    static func write(_ ring: KeyRing, to path: String) throws {
        do { try DurableFile.replace(path, with: Array(ring.jwkSetText().utf8)) } catch { throw StartupError("\(error)") }
    }
}
