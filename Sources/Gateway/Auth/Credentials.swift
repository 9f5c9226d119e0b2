import TokenCore

/// The users who may log in, built when the configuration loads: the datarhei single user
/// (`api.auth.username` / `api.auth.password`) and every `[[user]]`. Plaintext passwords are
/// hashed here. Every check costs the same, whoever asks: one hash of each scheme (and cost
/// parameters) in use, the user's own where there is one and a dummy of the others, so neither
/// an unknown name nor a user whose hash is cheaper than another's is told by the answer's time.
final class Credentials: Sendable {
    struct Entry: Sendable {
        let name: [UInt8]
        let hash: String
        let enabled: Bool
        let mustChangePassword: Bool
    }

    let entries: [Entry]
    /// One dummy hash per scheme in use (the default scheme when there are no users).
    private let dummies: [(scheme: PasswordHasher.Scheme, hash: String)]
    /// A digest of the settings this was built from: a reload with the same users reuses it
    /// instead of hashing every plaintext password again (keys-only reloads stay fast).
    let source: [UInt8]

    static func source(of config: GatewayConfig) -> [UInt8] {
        var text = "\(config.auth.enable)\u{0}\(config.auth.username)\u{0}\(config.auth.password)"
        for u in config.users { text += "\u{0}\(u.name)\u{0}\(u.password)\u{0}\(u.enabled)\u{0}\(u.mustChangePassword)" }
        return Crypto.sha256(Array(text.utf8))
    }

    init(config: GatewayConfig) throws {
        source = Self.source(of: config)
        func hashed(_ password: String) throws -> String {
            if PasswordHasher.isHash(password) { return password }
            return try PasswordHasher.hash(Array(password.utf8))
        }
        var list: [Entry] = []
        if config.auth.enable && !config.auth.username.isEmpty && !config.auth.password.isEmpty {
            list.append(Entry(name: Array(config.auth.username.utf8), hash: try hashed(config.auth.password),
                              enabled: true, mustChangePassword: false))
        }
        for u in config.users {
            list.append(Entry(name: Array(u.name.utf8), hash: try hashed(u.password), enabled: u.enabled,
                              mustChangePassword: u.mustChangePassword))
        }
        entries = list
        var schemes: [PasswordHasher.Scheme] = []
        for e in list {
            if let scheme = try? PasswordHasher.parse(e.hash).0, !schemes.contains(scheme) { schemes.append(scheme) }
        }
        if schemes.isEmpty { schemes = [.default] }
        dummies = try schemes.map { ($0, try PasswordHasher.hash(Crypto.randomBytes(16), scheme: $0)) }
    }

    var isEmpty: Bool { entries.isEmpty }

    func entry(named name: [UInt8]) -> Entry? { entries.first { Crypto.constantTimeEqual($0.name, name) } }

    /// Whether `subject` names an enabled user (refresh checks that the user still exists).
    func isActive(_ subject: [UInt8]) -> Bool { entry(named: subject)?.enabled ?? false }

    /// The password check: slow on purpose (run it on the blocking pool, never on a loop).
    /// Unknown and disabled users cost one hash like everybody else and fail.
    func check(name: [UInt8], password: [UInt8]) -> Bool {
        let e = entry(named: name)
        var ok = false
        for (i, hash) in hashesChecked(for: e).enumerated() {
            let matches = (try? PasswordHasher.verify(password, against: hash)) ?? false
            if i == 0 && e != nil { ok = matches }
        }
        return ok && (e?.enabled ?? false)
    }

    /// The hashes a check computes: the user's own first (when known), then a dummy of every
    /// other scheme in use; an unknown name gets the dummies of all of them.
    func hashesChecked(for e: Entry?) -> [String] {
        guard let e else { return dummies.map(\.hash) }
        let own = try? PasswordHasher.parse(e.hash).0
        return [e.hash] + dummies.filter { $0.scheme != own }.map(\.hash)
    }
}
