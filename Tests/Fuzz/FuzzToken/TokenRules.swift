@testable import TokenCore

/// The verifier's rules restated over the model of TokenModel.swift (DESIGN.md section 2 as
/// TokenVerifier.checkHeader and checkClaims implement it), with exact arithmetic for the times.
extension TokenOracle {
    struct Expected: CustomStringConvertible {
        let key: Int, iat: Int64, exp: Int64, sub: [UInt8], jti: [UInt8], lid: [UInt8]
        var description: String { "key \(key) iat \(iat) exp \(exp) sub \(sub) jti \(jti) lid \(lid)" }
    }

    static func asciiLower(_ b: [UInt8]) -> [UInt8] { b.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 } }

    /// C0 controls, DEL and C1 controls (U+0080...U+009F).
    static func hasControl(_ b: [UInt8]) -> Bool {
        String(decoding: b, as: UTF8.self).unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || ($0.value >= 0x80 && $0.value <= 0x9F) }
    }

    /// The members by name as the rules read them; nil when a name repeats (refused).
    static func unique(_ members: [(String, String, Value)]) -> [String: Value]? {
        var d: [String: Value] = [:]
        for (name, _, v) in members {
            if d[name] != nil { return nil }
            d[name] = v
        }
        return d
    }

    /// A string identifier claim (jti, lid): absent is fine, else 1...128 bytes without controls.
    static func identifier(_ v: Value?) -> [UInt8]?? {
        guard let v else { return .some(nil) }
        guard let s = v.string, !s.isEmpty, s.count <= 128, !hasControl(s) else { return nil }
        return .some(s)
    }

    static func expect(_ header: [(String, String, Value)], _ claims: [(String, String, Value)], policy: Policy,
                       use: TokenUse?, signedBy: (Int, JWSAlgorithm)?) -> Expected? {
        // Header.
        guard let h = unique(header), let alg = h["alg"]?.string else { return nil }
        if asciiLower(alg) == Array("none".utf8) { return nil }
        guard let algorithm = JWSAlgorithm.allCases.first(where: { Array($0.rawValue.utf8) == alg }) else { return nil }
        if h["crit"] != nil || ["jku", "x5u", "jwk", "x5c"].contains(where: { h[$0] != nil }) { return nil }
        if let typ = h["typ"] {
            guard let t = typ.string, asciiLower(t) == Array("jwt".utf8) else { return nil }
        }
        guard let kid = h["kid"]?.string, let key = specs.firstIndex(where: { Array($0.kid.utf8) == kid }) else { return nil }
        guard specs[key].state != .retired, specs[key].alg == algorithm else { return nil }

        // Signature: made with this key's secret under its pinned algorithm, and left intact.
        guard let (signer, signedAlg) = signedBy, signer == key, signedAlg == algorithm, specs[key].secret != nil else { return nil }

        // Claims.
        guard let m = unique(claims), let exp = m["exp"]?.int, let iat = m["iat"]?.int else { return nil }
        var nbf: Int64?
        if let v = m["nbf"] {
            guard let n = v.int else { return nil }
            nbf = n
        }
        let leeway = Int128(policy.leeway), clock = Int128(now)
        if Int128(exp) <= clock - leeway { return nil }
        if Int128(iat) > clock + leeway || nbf.map({ Int128($0) > clock + leeway }) == true { return nil }
        guard m["iss"]?.string == Array("gw".utf8) else { return nil }
        if let aud = m["aud"] {
            guard let wanted = policy.audience.map({ Array($0.utf8) }) else { return nil }
            if let s = aud.string {
                guard s == wanted else { return nil }
            } else {
                guard let list = aud.list, list.contains(where: { $0.string == wanted }) else { return nil }
            }
        } else if policy.audience != nil {
            return nil
        }
        guard let sub = m["sub"]?.string, !sub.isEmpty, sub.count <= policy.maxSubject, !hasControl(sub) else { return nil }
        if let use {
            guard m["usefor"]?.string == Array(use.rawValue.utf8) else { return nil }
        }
        guard let jti = identifier(m["jti"]), let lid = identifier(m["lid"]) else { return nil }
        if jti == nil && policy.requireTokenID { return nil }

        // Revocations (TokenOracle.revocations).
        if jti == Array("revoked-jti".utf8) || lid == Array("revoked-lid".utf8) { return nil }
        if sub == Array("banned".utf8) && iat <= now - 10 { return nil }
        return Expected(key: key, iat: iat, exp: exp, sub: sub, jti: jti ?? [], lid: lid ?? [])
    }
}
