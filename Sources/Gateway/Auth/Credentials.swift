import TokenCore

/// The users who may log in, built when the configuration loads: the datarhei single user
/// (`api.auth.username` / `api.auth.password`) and every `[[user]]`. Plaintext passwords are
/// hashed here, and unknown names are checked against a dummy hash of the same cost, so the time
/// an answer takes does not tell which names exist.
final class Credentials: Sendable {
    struct Entry: Sendable {
        let name: [UInt8]
        let hash: String
        let enabled: Bool
        let mustChangePassword: Bool
    }

    let entries: [Entry]
    private let dummyHash: String
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
        dummyHash = try PasswordHasher.hash(Crypto.randomBytes(16))
    }

    var isEmpty: Bool { entries.isEmpty }

    func entry(named name: [UInt8]) -> Entry? { entries.first { Crypto.constantTimeEqual($0.name, name) } }

    /// Whether `subject` names an enabled user (refresh checks that the user still exists).
    func isActive(_ subject: [UInt8]) -> Bool { entry(named: subject)?.enabled ?? false }

    /// The password check: slow on purpose (run it on the blocking pool, never on a loop).
    /// Unknown and disabled users cost one hash like everybody else and fail.
    func check(name: [UInt8], password: [UInt8]) -> Bool {
        guard let e = entry(named: name) else {
            _ = try? PasswordHasher.verify(password, against: dummyHash)
            return false
        }
        let ok = (try? PasswordHasher.verify(password, against: e.hash)) ?? false
        return ok && e.enabled
    }
}
