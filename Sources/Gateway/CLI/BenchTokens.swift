import TokenCore

/// `gateway bench-tokens`: the token engine's cost on one core, in release builds.
/// A measurement tool, not a test: it asserts nothing.
enum BenchTokens {
    static func run(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["iterations"])
        let n = Int(try a.int("iterations", default: 1_000_000))
        guard n > 0 else { throw UsageError("--iterations must be positive") }
        let now = unixNow()
        let ring = try KeyRing(keys: [
            KeyRing.generateKey(state: .verify, now: now - 86_400),
            KeyRing.generateKey(state: .active, now: now),
        ])
        let issuer = TokenIssuer(settings: IssuerSettings(issuer: "datarhei-core"))
        let token = try issuer.issue(subject: "user-42@example.org", use: .access, ring: ring, now: now).token
        let verifier = TokenVerifier(policy: VerifierPolicy(issuer: "datarhei-core"))
        let revocations = RevocationSet()
        revocations.revoke(jti: Array("some-other-token".utf8), until: now + 600)
        var bytes = Array(token.utf8)

        // Verify: decode, parse, HMAC, constant-time compare, claims, revocation look-up.
        var ok = 0
        let t0 = monotonicNanos()
        bytes.withUnsafeMutableBytes { raw in
            let t = UnsafeRawBufferPointer(raw)
            for _ in 0..<n {
                if let v = try? verifier.verify(t, use: .access, ring: ring, revocations: revocations, now: now) { ok &+= v.subject.count }
            }
        }
        let verifyNs = Double(monotonicNanos() - t0) / Double(n)
        precondition(ok == n * 19, "benchmark token failed to verify")

        // Where the time goes: each stage alone on the same token.
        let parts = token.split(separator: ".").map { Array($0.utf8) }
        let payload = Base64URL.decode(String(decoding: parts[1], as: UTF8.self)) ?? []
        var out = [UInt8](repeating: 0, count: 8192)
        let tape = JSONTape()
        let hmac = HMACContext(algorithm: .hs256, secret: ring.activeKey!.secret!)!
        let signingInput = Array(token.utf8.prefix(parts[0].count + 1 + parts[1].count))
        let m = n / 4
        let b64Ns = time(m) {
            parts[1].withUnsafeBytes { p in out.withUnsafeMutableBytes { _ = Base64URL.decode(p, into: $0) } }
        }
        let jsonNs = time(m) {
            payload.withUnsafeBytes { try? tape.parse($0, limits: .token) }
        }
        let macNs = time(m) {
            signingInput.withUnsafeBytes { i in out.withUnsafeMutableBytes { _ = hmac.mac(i, into: $0) } }
        }

        let issues = max(1, n / 10)
        let t1 = monotonicNanos()
        for _ in 0..<issues { _ = try issuer.issue(subject: "user-42@example.org", use: .access, ring: ring, now: now) }
        let issueNs = Double(monotonicNanos() - t1) / Double(issues)

        let hashes = 5
        let t2 = monotonicNanos()
        for _ in 0..<hashes { _ = try PasswordHasher.hash(Array("correct horse battery staple".utf8)) }
        let hashMs = Double(monotonicNanos() - t2) / Double(hashes) / 1e6

        print("token: \(bytes.count) bytes, HS256, ring of 2 keys, 1 revocation entry")
        print("verify (full check): \(format(verifyNs)) ns/op over \(n)")
        print("  stages: base64url decode of the claims \(format(b64Ns)) ns, claims JSON parse \(format(jsonNs)) ns, HMAC-SHA256 \(format(macNs)) ns")
        print("issue:               \(format(issueNs)) ns/op over \(issues)")
        print("password hash (scrypt ln=15,r=8,p=1): \(format(hashMs)) ms/op over \(hashes)")
        return 0
    }

    static func time(_ n: Int, _ body: () -> Void) -> Double {
        let t = monotonicNanos()
        for _ in 0..<n { body() }
        return Double(monotonicNanos() - t) / Double(n)
    }

    static func format(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return String(r)
    }
}
