import Foundation
import FuzzSupport
@testable import TokenCore

/// Tokens built from choices: a header and claims drawn from valid and hostile values, written
/// with escapes, spacing, key order and duplicates the choices pick, signed by our own HMAC with
/// the right key or a wrong one. The expected verdict is read from the model, by the rules of
/// TokenVerifier.checkHeader and checkClaims, never from the bytes.
extension TokenOracle {
    /// A JSON value: its text and what the rules can see in it.
    struct Value { var json: String; var string: [UInt8]? = nil; var int: Int64? = nil; var list: [Value]? = nil }

    static func hex4(_ v: UInt32, upper: Bool) -> String {
        let h = String(v, radix: 16, uppercase: upper)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }

    /// `s` as a JSON string; bits of `escape` pick which scalars are written as escapes.
    static func str(_ s: String, _ escape: UInt8) -> Value {
        var out = "\""
        for (k, u) in s.unicodeScalars.enumerated() {
            let forced = u.value < 0x20 || u == "\"" || u == "\\"
            if !forced && (escape == 0 || (Int(escape) >> (k % 7)) & 1 == 0) { out.unicodeScalars.append(u); continue }
            let short: [Unicode.Scalar: String] = ["\"": "\\\"", "\\": "\\\\", "\n": "\\n", "\t": "\\t", "/": "\\/", "\u{8}": "\\b"]
            if escape & 0x80 == 0, let e = short[u] { out += e; continue }
            if u.value > 0xFFFF {
                out += hex4(0xD800 + (u.value - 0x10000) >> 10, upper: k & 1 == 0) + hex4(0xDC00 + (u.value - 0x10000) & 0x3FF, upper: false)
            } else {
                out += hex4(u.value, upper: k & 1 == 0)
            }
        }
        return Value(json: out + "\"", string: Array(s.utf8))
    }

    static func pick(_ pool: [String], _ c: inout FuzzChoices) -> Value? {
        let b = Int(c.byte())
        return b % (pool.count + 1) == 0 ? nil : str(pool[b % (pool.count + 1) - 1], c.byte())
    }

    /// A time claim near `now`, an extreme, or a value that is not an exact integer.
    static func time(_ c: inout FuzzChoices) -> Value? {
        let kind = c.byte(), d = c.byte()
        switch kind % 12 {
        case 0: return nil
        case 1...6: let v = now + Int64(Int8(bitPattern: d)); return Value(json: String(v), int: v)
        case 7: return Value(json: String(Int64.max), int: .max)
        case 8: return Value(json: String(Int64.min), int: .min)
        case 9: return Value(json: ["1e3", "1750000100.0", "9223372036854775808", "-9223372036854775809", "-0.0", "17500001E2"][Int(d) % 6])
        case 10: return str(String(now + Int64(d)), 0)
        default: return Value(json: ["null", "true", "[]", "{}", "-0"][Int(d) % 5], int: d % 5 == 4 ? 0 : nil)
        }
    }

    static let subjects = ["alice", "", "a\u{1}b", "x\u{85}y", "del\u{7F}", String(repeating: "s", count: 16), String(repeating: "s", count: 17),
                           String(repeating: "é", count: 128), String(repeating: "t", count: 257), "é漢😀/", "banned", "a b", "\u{A0}"]
    static let ids = ["j-1", "", "revoked-jti", "tab\t", String(repeating: "i", count: 128), String(repeating: "i", count: 129), "ü", "\u{9F}", "revoked-lid"]

    /// FUZZ_TRACE=1 in a replay prints each built token and its verdict.
    static let trace = ProcessInfo.processInfo.environment["FUZZ_TRACE"] != nil

    static func checkModel(_ rest: UnsafeRawBufferPointer) {
        var c = FuzzChoices(rest, count: rest.count)
        let p = Int(c.byte() & 3), use = uses[Int(c.byte()) % 3], policy = policies[p]

        // Header: (name as the rules read it, name as written, value).
        var header: [(String, String, Value)] = []
        if let alg = pick(["HS256", "HS384", "HS512", "ES256", "RS256", "none", "nOnE", "hs256", "HS256 "], &c) { header.append(("alg", "alg", alg)) }
        if c.byte() & 7 == 1 { header.append(("alg", "alg", Value(json: "1"))) }
        if let kid = pick(["hs", "h3", "h5", "old", "ec1", "zz", "hs\u{0}"], &c) { header.append(("kid", "kid", kid)) }
        if c.byte() & 7 == 1 { header.append(("kid", "kid", Value(json: "[\"hs\"]"))) }
        if let typ = pick(["JWT", "jwt", "JwT", "JOSE", "at+jwt"], &c) { header.append(("typ", "typ", typ)) }
        let extra = c.byte()
        if extra % 8 == 1 { header.append(("crit", "crit", Value(json: "[\"exp\"]"))) }
        if extra % 8 == 2 { header.append((["jku", "x5u", "jwk", "x5c"][Int(extra >> 3) % 4], ["jku", "x5u", "jwk", "x5c"][Int(extra >> 3) % 4], Value(json: "{}"))) }
        if extra % 8 == 3 { header.append(("cty", "cty", str("JWT", 0))) }

        // Claims.
        var claims: [(String, String, Value)] = []
        func add(_ name: String, _ v: Value?) { if let v { claims.append((name, name, v)) } }
        add("exp", time(&c)); add("iat", time(&c)); add("nbf", time(&c))
        add("iss", pick(["gw", "GW", "gw\u{0}", "", "gw2", "g"], &c))
        switch c.byte() % 8 {
        case 1: add("aud", str("api", c.byte()))
        case 2: add("aud", Value(json: "[\"x\",\"api\"]", list: [str("x", 0), str("api", 0)]))
        case 3: add("aud", Value(json: "[\"x\",1]", list: [str("x", 0), Value(json: "1")]))
        case 4: add("aud", Value(json: "[[\"api\"]]", list: [Value(json: "[\"api\"]")]))
        case 5: add("aud", str("API", 0))
        case 6: add("aud", Value(json: "[]", list: []))
        default: break
        }
        add("sub", pick(subjects, &c))
        add("usefor", pick(["access", "refresh", "ACCESS"], &c))
        add("jti", pick(ids, &c))
        add("lid", pick(ids, &c))
        let decoy = c.byte()
        if decoy % 4 == 1 { claims.append(("exp\u{0}", "exp\\u0000", Value(json: "\"x\""))) }
        if decoy % 4 == 2 { claims.append(("x", "x", Value(json: "{\"y\":[1,2,{\"z\":null}],\"exp\":\"no\"}"))) }
        if decoy % 4 == 3 { claims.append(("EXP", "EXP", Value(json: "\"x\""))) }
        for list in [0, 1] {
            let d = c.byte()
            var members = list == 0 ? header : claims
            // A duplicate (refused), a name written with an escape (the same name), a new order.
            if d & 3 == 1, let m = members.first { members.append(m) }
            if d & 12 == 4, !members.isEmpty {
                let k = Int(d >> 4) % members.count, name = members[k].1
                members[k].1 = hex4(name.unicodeScalars.first!.value, upper: false) + String(name.unicodeScalars.dropFirst())
            }
            for i in stride(from: members.count - 1, to: 0, by: -1) { members.swapAt(i, Int(c.byte()) % (i + 1)) }
            if list == 0 { header = members } else { claims = members }
        }
        let space = [" ", "\n", "\t", "", "\r\n"][Int(c.byte()) % 5]
        func text(_ m: [(String, String, Value)]) -> [UInt8] {
            Array(("{" + m.map { "\(space)\"\($0.1)\"\(space):\($0.2.json)" }.joined(separator: ",") + "}").utf8)
        }
        let h = TokenFuzz.foundationEncode(text(header)), pl = TokenFuzz.foundationEncode(text(claims))

        // Signed by the key the header names (an HMAC key), the active key, or under the wrong algorithm.
        let signer = c.byte() % 8
        let kidIndex = header.first { $0.0 == "kid" }.flatMap { k in specs.firstIndex { k.2.string == Array($0.kid.utf8) } }
        var key = kidIndex.flatMap { specs[$0].secret == nil ? nil : $0 } ?? 0, alg = specs[key].alg
        if signer == 6 { key = 0; alg = .hs256 }
        if signer == 7 { key = 1; alg = .hs512 }
        var sig = TokenFuzz.foundationEncode(hmac(alg, key: specs[key].secret!, h + [UInt8(ascii: ".")] + pl))
        let damage = c.byte() % 16
        if damage == 1 { sig.append(UInt8(ascii: "=")) }
        if damage == 2 { sig.removeLast() }
        if damage == 3 { sig[0] = sig[0] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A") }
        let token = h + [UInt8(ascii: ".")] + pl + (damage == 4 ? Array("=".utf8) : []) + [UInt8(ascii: ".")] + sig

        let got = token.withUnsafeBytes { verifyAll($0, policy: p, use: use) }
        let signedRight = damage == 0 || damage > 4
        let expected = expect(header, claims, policy: policy, use: use, signedBy: signedRight ? (key, alg) : nil)
        if trace { print("\(String(decoding: token, as: UTF8.self))\n  -> \(got)") }
        switch (got, expected) {
        case let (.accepted(k, iat, exp, sub, jti, lid), .some(e)):
            precondition(k == e.key && iat == e.iat && exp == e.exp && sub == e.sub && jti == e.jti && lid == e.lid,
                         "accepted with other claims: \(got) vs \(e)")
        case (.refused, nil): break
        default: preconditionFailure("verdict \(got), the rules say \(expected.map { "accept \($0)" } ?? "refuse") for \(String(decoding: token, as: UTF8.self))")
        }
    }
}
