import CGatewayShims
import Foundation
@testable import TokenCore

/// The fixed key ring, policies and clock of FuzzToken, an HMAC of its own (RFC 2104 over
/// OpenSSL's EVP_Digest, not TokenCore's EVP_MAC contexts), and the checks of an accepted token
/// that do not trust the verifier's own decoding.
enum TokenOracle {
    static let now: Int64 = 1_750_000_000

    struct KeySpec { let kid: String; let alg: JWSAlgorithm; let secret: [UInt8]?; let state: KeyState }
    static let specs: [KeySpec] = [
        KeySpec(kid: "hs", alg: .hs256, secret: Array("fuzz-secret-for-hs256-0123456789".utf8), state: .active),
        KeySpec(kid: "h3", alg: .hs384, secret: [UInt8](repeating: 0x33, count: 48), state: .verify),
        KeySpec(kid: "h5", alg: .hs512, secret: (0..<64).map { UInt8($0) }, state: .verify),
        KeySpec(kid: "old", alg: .hs256, secret: [UInt8](repeating: 0x6F, count: 32), state: .retired),
        KeySpec(kid: "ec1", alg: .es256, secret: nil, state: .verify),  // RFC 7515 A.3's key
    ]
    static let ecKey = PublicKey(curve: "P-256", x: Base64URL.decode("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU")!,
                                 y: Base64URL.decode("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")!)!
    static func makeRing() -> KeyRing {
        try! KeyRing(keys: specs.map { s in
            try! Key(kid: s.kid, algorithm: s.alg, material: s.secret.map { .secret($0) } ?? .publicKey(ecKey), state: s.state)
        })
    }
    /// Two rings with the same keys: switching rings empties a verifier's header memo.
    static let ring = makeRing(), otherRing = makeRing()

    struct Policy { let audience: String?; let leeway: Int64; let requireTokenID: Bool; let maxSubject: Int }
    static let policies = [Policy(audience: nil, leeway: 0, requireTokenID: true, maxSubject: 256),
                           Policy(audience: "api", leeway: 30, requireTokenID: false, maxSubject: 256),
                           Policy(audience: nil, leeway: 5, requireTokenID: false, maxSubject: 16),
                           Policy(audience: "api", leeway: 1 << 62, requireTokenID: true, maxSubject: 256)]
    static func verifier(_ p: Policy) -> TokenVerifier {
        TokenVerifier(policy: VerifierPolicy(issuer: "gw", audience: p.audience, leeway: p.leeway,
                                             requireTokenID: p.requireTokenID, maxSubjectBytes: p.maxSubject))
    }
    nonisolated(unsafe) static let warm = policies.map(verifier), cold = policies.map(verifier)
    static let uses: [TokenUse?] = [nil, .access, .refresh]
    static let revocations: RevocationSet = {
        let r = RevocationSet()
        r.revoke(jti: Array("revoked-jti".utf8), until: now + 1000)
        r.revoke(subject: Array("banned".utf8), issuedAtOrBefore: now - 10)
        r.revoke(family: Array("revoked-lid".utf8), until: now + 1000)
        return r
    }()

    // MARK: HMAC from SHA-2 (RFC 2104)

    static func digest(_ md: OpaquePointer, _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { d in out.withUnsafeMutableBufferPointer { EVP_Digest(d.baseAddress, d.count, $0.baseAddress, &length, md, nil) } }
        precondition(ok == 1, "EVP_Digest failed")
        return Array(out[..<Int(length)])
    }

    static func hmac(_ alg: JWSAlgorithm, key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        let (md, block): (OpaquePointer, Int) = alg == .hs256 ? (EVP_sha256(), 64) : alg == .hs384 ? (EVP_sha384(), 128) : (EVP_sha512(), 128)
        var k = key.count > block ? digest(md, key) : key
        k += [UInt8](repeating: 0, count: block - k.count)
        return digest(md, k.map { $0 ^ 0x5C } + digest(md, k.map { $0 ^ 0x36 } + message))
    }

    /// RFC 4231 test case 2, once: the oracle itself must be right.
    static let selfTested: Bool = {
        let mac = hmac(.hs256, key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
        precondition(Crypto.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "own HMAC is wrong")
        let mac512 = hmac(.hs512, key: [UInt8](repeating: 0xAA, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
        precondition(Crypto.hex(mac512).hasPrefix("80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"), "own HMAC-512 is wrong")
        return true
    }()

    // MARK: Verdicts

    enum Verdict: Equatable {
        case accepted(key: Int, iat: Int64, exp: Int64, sub: [UInt8], jti: [UInt8], lid: [UInt8])
        case refused(TokenError)
    }

    static func verdict(_ v: TokenVerifier, _ token: UnsafeRawBufferPointer, _ use: TokenUse?, _ ring: KeyRing) -> Verdict {
        do {
            let t = try v.verify(token, use: use, ring: ring, revocations: revocations, now: now)
            return .accepted(key: t.keyIndex, iat: t.issuedAt, exp: t.expiresAt, sub: Array(t.subject), jti: Array(t.tokenID), lid: Array(t.loginID))
        } catch {
            return .refused(error)
        }
    }

    /// Verifies with a warm verifier twice (the second time from its header memo) and with one
    /// whose memo was just emptied, over an equal ring: one verdict.
    static func verifyAll(_ token: UnsafeRawBufferPointer, policy p: Int, use: TokenUse?) -> Verdict {
        precondition(selfTested)
        let a = verdict(warm[p], token, use, ring)
        let b = verdict(warm[p], token, use, ring)
        _ = Array("e30.e30.e30".utf8).withUnsafeBytes { verdict(cold[p], $0, use, ring) }
        let c = verdict(cold[p], token, use, otherRing)
        precondition(a == b && a == c, "the verdict depends on the header memo: \(a) \(b) \(c)")
        if case .accepted = a { checkAccepted(Array(token), policies[p]) }
        return a
    }

    static func checkRaw(_ rest: UnsafeRawBufferPointer) {
        guard let c = rest.first else { return }
        _ = verifyAll(UnsafeRawBufferPointer(rebasing: rest[1...]), policy: Int(c & 3), use: uses[Int(c >> 2) % 3])
    }

    /// An accepted token, read with Foundation: three parts, a header naming a live key whose
    /// pinned algorithm is `alg`, a signature that is the HMAC of `header.payload` under that
    /// key's secret, and times and issuer that hold at `now`.
    static func checkAccepted(_ token: [UInt8], _ p: Policy) {
        let parts = token.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map(Array.init)
        precondition(parts.count == 3, "accepted a token of \(parts.count) parts")
        guard let h = TokenFuzz.foundationDecode(parts[0]), let header = object(h) else { preconditionFailure("header unreadable") }
        guard let kid = header["kid"] as? String, let spec = specs.first(where: { Array($0.kid.utf8) == Array(kid.utf8) }),
              let alg = header["alg"] as? String else { preconditionFailure("accepted without a known kid and alg") }
        precondition(Array(alg.utf8) == Array(spec.alg.rawValue.utf8), "accepted alg \(alg) for a key pinned to \(spec.alg)")
        precondition(spec.state != .retired, "accepted a retired key")
        guard let secret = spec.secret else { preconditionFailure("accepted an ES256 token nobody here could sign") }
        let signature = TokenFuzz.foundationDecode(parts[2])
        precondition(signature == hmac(spec.alg, key: secret, parts[0] + [UInt8(ascii: ".")] + parts[1]), "accepted a wrong signature")
        // JSONSerialization may read big numbers as Double; only exact ones are compared.
        guard let c = TokenFuzz.foundationDecode(parts[1]), let claims = object(c) else { return }
        let leeway = Int128(p.leeway), clock = Int128(now)
        if let exp = TokenFuzz.integer(claims["exp"]) { precondition(Int128(exp) > clock - leeway, "accepted an expired token") }
        if let iat = TokenFuzz.integer(claims["iat"]) { precondition(Int128(iat) <= clock + leeway, "accepted a token issued later") }
        if let nbf = TokenFuzz.integer(claims["nbf"]) { precondition(Int128(nbf) <= clock + leeway, "accepted a token not yet valid") }
        precondition((claims["iss"] as? String).map { Array($0.utf8) } == Array("gw".utf8), "accepted another issuer")
    }

    static func object(_ bytes: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(bytes), options: [])) as? [String: Any]
    }
}
