import Foundation
import FuzzSupport
@testable import TokenCore

/// TokenCore by its properties; the first byte picks one (the rest is the input):
/// 0 Base64URL: encode agrees with Foundation's base64 (URL alphabet, no padding) and decodes
///   back; decode accepts exactly the texts of the URL alphabet whose length is not 1 mod 4 and
///   whose unused trailing bits are zero, gives Foundation's bytes for them, re-encodes to the
///   same text, and refuses an output buffer one byte short.
/// 1 JSONTape: never traps; a document it accepts parses with JSONSerialization (fragments
///   allowed), its nodes stay inside the input, and a top-level object has the same members
///   with the same string values (and integers, where a Double holds them exactly).
/// 2 TokenVerifier on the input as a token: an accepted token has an independently computed
///   HMAC (RFC 2104 over OpenSSL's EVP_Digest) equal to its signature, the `alg` its key is
///   pinned to, and exp/iat/nbf/iss that hold at `now`; the header memo changes no verdict.
/// 3 TokenVerifier on a token built from choices (TokenModel.swift): header and claims drawn
///   from hostile variants, signed with the right or a wrong key; the verdict must equal an
///   independent reading of the rules (TokenVerifier.checkHeader/checkClaims), and an
///   accepted token gives back the modelled subject, jti, lid, iat and exp.
enum TokenFuzz {
    static func check(_ input: UnsafeRawBufferPointer) {
        guard let mode = input.first else { return }
        let rest = UnsafeRawBufferPointer(rebasing: input[1...])
        switch mode % 4 {
        case 0: checkBase64(rest)
        case 1: checkTape(rest)
        case 2: TokenOracle.checkRaw(rest)
        default: TokenOracle.checkModel(rest)
        }
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Foundation's base64, turned into unpadded base64url.
    static func foundationEncode(_ bytes: [UInt8]) -> [UInt8] {
        Array(Data(bytes).base64EncodedString().utf8).compactMap { c in
            c == UInt8(ascii: "+") ? UInt8(ascii: "-") : c == UInt8(ascii: "/") ? UInt8(ascii: "_") : c == UInt8(ascii: "=") ? nil : c
        }
    }

    /// Foundation's decoding of unpadded base64url text (lenient about trailing bits).
    static func foundationDecode(_ text: [UInt8]) -> [UInt8]? {
        var s = String(decoding: text.map { $0 == UInt8(ascii: "-") ? UInt8(ascii: "+") : $0 == UInt8(ascii: "_") ? UInt8(ascii: "/") : $0 },
                       as: UTF8.self)
        while s.utf8.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map { Array($0) }
    }

    static func checkBase64(_ rest: UnsafeRawBufferPointer) {
        let x = Array(rest)
        let text = Base64URL.encode(x)
        precondition(Array(text.utf8) == foundationEncode(x), "encode differs from Foundation")
        precondition(text.utf8.count == Base64URL.encodedLength(x.count))
        precondition(Base64URL.decode(text) == x, "decode(encode(x)) != x")

        // The input read as text, decoded into a buffer of exactly the announced size.
        let t = x
        let valueOf = { (c: UInt8) -> Int? in alphabet.firstIndex(of: c) }
        var valid = t.count % 4 != 1 && t.allSatisfy { valueOf($0) != nil }
        if valid, let last = t.last {
            if t.count % 4 == 2 { valid = valueOf(last)! & 0x0F == 0 }
            if t.count % 4 == 3 { valid = valueOf(last)! & 0x03 == 0 }
        }
        let length = Base64URL.decodedLength(t.count)
        precondition((length == nil) == (t.count % 4 == 1))
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: length ?? 0, alignment: 1)
        defer { out.deallocate() }
        let n = t.withUnsafeBytes { Base64URL.decode($0, into: out) }
        precondition((n != nil) == valid, "decode verdict \(n as Any) for \(String(decoding: t, as: UTF8.self)), expected valid=\(valid)")
        guard let n else { return }
        let decoded = Array(out[0..<n])
        precondition(n == length, "decoded length differs from decodedLength")
        precondition(foundationDecode(t) == decoded, "decode differs from Foundation")
        precondition(Base64URL.encode(decoded) == String(decoding: t, as: UTF8.self), "an accepted text is not canonical")
        if n > 0 {
            let short = UnsafeMutableRawBufferPointer.allocate(byteCount: n - 1, alignment: 1)
            defer { short.deallocate() }
            precondition(t.withUnsafeBytes { Base64URL.decode($0, into: short) } == nil, "decoded into a buffer too small")
        }
    }

    nonisolated(unsafe) static let tape = JSONTape(capacity: 8)

    static func checkTape(_ rest: UnsafeRawBufferPointer) {
        guard let limitChoice = rest.first else { return }
        let bytes = UnsafeRawBufferPointer(rebasing: rest[1...])
        let limits = limitChoice & 1 == 0 ? JSONLimits.token : JSONLimits(maxBytes: 8192, maxDepth: 32, maxValues: 4096)
        do { try tape.parse(bytes, limits: limits) } catch { return }
        let count = tape.count
        precondition(count >= 1 && Int(tape[0].next) == count, "the root does not span the tape")
        for i in 0..<count {
            let node = tape[i]
            precondition(Int(node.next) > i && Int(node.next) <= count, "node \(i) has next \(node.next)")
            precondition(node.start >= 0 && node.start <= node.end && Int(node.end) <= bytes.count, "node \(i) outside the input")
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            // Foundation refuses numbers beyond Double's range (RFC 8259 section 6 allows limits).
            let huge = (0..<count).contains { i in
                tape[i].kind == .number && !(Double(String(decoding: bytes[Int(tape[i].start)..<Int(tape[i].end)], as: UTF8.self))?.isFinite ?? false)
            }
            precondition(huge, "JSONTape accepted what JSONSerialization refuses: \(error)")
            return
        }
        guard tape[0].kind == .object, let object = parsed as? [String: Any] else { return }
        var members: [(String, JSONNode)] = []
        var i = 1
        while i < count {
            members.append((JSONText.string(tape[i], in: bytes), tape[i + 1]))
            i = Int(tape[i + 1].next)
        }
        precondition(members.count == Int(tape[0].count), "member count")
        // Swift strings compare by canonical equivalence: keys that differ only in normalisation
        // are one dictionary entry for Foundation, two members here; such objects are skipped.
        guard Set(members.map(\.0)).count == members.count else { return }
        precondition(object.count == members.count, "\(object.count) members for Foundation, \(members.count) here")
        for (key, value) in members {
            if value.kind == .string {
                guard let theirs = object[key] as? String else { preconditionFailure("member \(key) is not a string for Foundation") }
                precondition(Array(JSONText.string(value, in: bytes).utf8) == Array(theirs.utf8), "member \(key) differs")
            } else if let v = JSONText.int64(value, in: bytes), v.magnitude < 1 << 53 {
                precondition(integer(object[key]) == v, "member \(key): \(v) vs \(object[key] as Any)")
            }
        }
    }

    static func integer(_ any: Any?) -> Int64? {
        switch any {
        case let n as Int: return Int64(n)
        case let n as Int64: return n
        case let d as Double: return d == d.rounded() && abs(d) < 9e15 ? Int64(d) : nil
        case let n as NSNumber: return n.int64Value
        default: return nil
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    TokenFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
