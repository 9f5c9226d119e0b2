import Foundation
import FuzzSupport
@testable import Gateway
import TokenCore

/// An identity provider's key set and cache headers, which come from the network, by their
/// properties. Input byte 0: even, the rest is a JWK Set document; 3 modulo 4, an https URL
/// (`HTTPSLocation`, how a discovered `jwks_uri` is read); 1 modulo 4, a Cache-Control value.
/// - `IdPKeySet.parse` never traps; a set it accepts keeps only keys whose algorithm is allowed
///   and fits the key (RS* on RSA of at least 2048 bits, ES256 on P-256, ES384 on P-384), at most
///   `maximumKeys` of them, each under a `kid` that an independent reader (JSONSerialization)
///   finds on exactly one member of the document's `keys`; every other member is said in
///   `skipped`, once; with nothing allowed, nothing is kept.
/// - `JWKSCache.Policy.lifetime` is within the policy's bounds for any value, and is the default
///   when the value names neither `max-age` nor `no-store`/`no-cache` in any case.
enum JWKSFuzz {
    static let allowed: Set<JWSAlgorithm> = [.rs256, .rs384, .rs512, .es256, .es384]

    static func check(_ input: UnsafeRawBufferPointer) {
        guard let mode = input.first else { return }
        let rest = Array(input[1...])
        if mode % 2 == 0 { checkKeySet(rest) } else if mode % 4 == 3 { checkLocation(rest) } else { checkCacheControl(rest) }
    }

    /// An https URL (`jwks_uri` comes from the provider's discovery document): taken apart or
    /// refused, never trapping; what it accepts has a host without spaces or control bytes, a
    /// port, a path from "/", and reads back the same from its own parts.
    static func checkLocation(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let l = HTTPSLocation(text) else { return }
        precondition(!l.host.isEmpty && l.port > 0 && l.path.hasPrefix("/"), "\(l)")
        precondition(!l.host.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F || $0 == "/" || $0 == "@" }, "host \(l.host)")
        precondition(HTTPSLocation("https://" + l.hostPort + l.path) == l, "\(l) does not read back")
    }

    static func checkKeySet(_ bytes: [UInt8]) {
        guard let set = try? IdPKeySet.parse(bytes, allowed: allowed) else { return }
        precondition(set.keys.count <= IdPKeySet.maximumKeys)
        // The independent reader refuses numbers beyond a double's range, which JSON allows (and
        // the gateway's reader takes): then the kids are counted with the gateway's own reader.
        let independent = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        let kidsOnMembers: [String?]
        if let object = independent {
            guard let members = (object as? [String: Any])?["keys"] as? [Any] else {
                preconditionFailure("a key set without a keys array was accepted")
            }
            kidsOnMembers = members.map { ($0 as? [String: Any])?["kid"] as? String }
        } else {
            guard let members = (try? JSONValue.parse(bytes))?["keys"]?.arrayValue else {
                preconditionFailure("a key set without a keys array was accepted")
            }
            kidsOnMembers = members.map { $0["kid"]?.stringValue }
        }
        precondition(set.keys.count + set.skipped.count >= kidsOnMembers.count, "a member neither kept nor said")
        for (kid, entry) in set.keys {
            precondition(allowed.contains(entry.algorithm), "\(entry.algorithm) is not allowed")
            switch entry.key.kind {
            case .rsa:
                precondition([.rs256, .rs384, .rs512].contains(entry.algorithm) && entry.key.bits >= 2048, "RSA key as \(entry.algorithm)")
            case .ec:
                precondition(entry.algorithm == (entry.key.bits == 384 ? .es384 : .es256), "EC key of \(entry.key.bits) bits as \(entry.algorithm)")
            }
            let holders = kidsOnMembers.filter { $0 == kid }.count
            precondition(holders == 1, "kid \(kid) is on \(holders) members")
        }
        let none = try? IdPKeySet.parse(bytes, allowed: [])
        precondition(none?.keys.isEmpty ?? false, "a key kept with nothing allowed")
    }

    static func checkCacheControl(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let p = JWKSCache.Policy()
        let lifetime = p.lifetime(cacheControl: text)
        precondition((p.minimumSeconds...p.maximumSeconds).contains(lifetime), "lifetime \(lifetime)")
        let lower = text.lowercased()
        if !lower.contains("max-age") && !lower.contains("no-store") && !lower.contains("no-cache") {
            precondition(lifetime == p.defaultSeconds, "lifetime \(lifetime) without a directive for it")
        }
        precondition(p.lifetime(cacheControl: text) == lifetime, "not deterministic")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    JWKSFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
