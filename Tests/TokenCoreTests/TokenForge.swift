import XCTest
@testable import TokenCore

/// Forges compact JWS tokens from raw text, for tests that must build what no honest issuer
/// would: any header, any claims, any signature, parts that are not even base64url.
///
/// The signature is always computed over the exact characters of "headerPart.payloadPart" as
/// they appear in the token, so a forged token fails for the rule it breaks and not because its
/// signature is off (unless the signature is what the test breaks).
enum TokenForge {
    /// base64url (unpadded) of the UTF-8 bytes of `json`, exactly as written.
    static func part(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }

    /// base64url of raw bytes (for parts that are not valid UTF-8).
    static func part(bytes: [UInt8]) -> String { Base64URL.encode(bytes) }

    /// The MAC of `signingInput` under `secret` with the HMAC `algorithm`, base64url encoded.
    static func signature(_ signingInput: String, secret: [UInt8], algorithm: JWSAlgorithm = .hs256) -> String {
        guard let ctx = HMACContext(algorithm: algorithm, secret: secret) else {
            preconditionFailure("TokenForge: libcrypto refused an \(algorithm.rawValue) key of \(secret.count) bytes")
        }
        return Base64URL.encode(ctx.mac(Array(signingInput.utf8)))
    }

    /// Signs two already encoded parts as they are (even when they are not base64url at all).
    static func sign(headerPart: String, payloadPart: String, secret: [UInt8], algorithm: JWSAlgorithm = .hs256) -> String {
        let input = headerPart + "." + payloadPart
        return input + "." + signature(input, secret: secret, algorithm: algorithm)
    }

    /// A token of raw header JSON text and raw payload JSON text, signed with `secret`.
    static func token(header: String, payload: String, secret: [UInt8], algorithm: JWSAlgorithm = .hs256) -> String {
        sign(headerPart: part(header), payloadPart: part(payload), secret: secret, algorithm: algorithm)
    }

    /// A token whose payload is arbitrary bytes (invalid UTF-8 and the like).
    static func token(header: String, payloadBytes: [UInt8], secret: [UInt8], algorithm: JWSAlgorithm = .hs256) -> String {
        sign(headerPart: part(header), payloadPart: part(bytes: payloadBytes), secret: secret, algorithm: algorithm)
    }

    /// A token with the given signature part instead of a real one ("" for none).
    static func unsigned(header: String, payload: String, signature: String = "") -> String {
        part(header) + "." + part(payload) + "." + signature
    }

    /// The three parts of a compact token (no validation).
    static func parts(_ token: String) -> [String] {
        token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    }

    /// The decoded JSON text of part `index` of `token`, or nil when it is not strict base64url.
    static func decodedPart(_ token: String, _ index: Int) -> String? {
        let p = parts(token)
        guard index < p.count, let bytes = Base64URL.decode(p[index]) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The header of `token` as a JSON object.
    static func header(_ token: String) -> [String: Any]? {
        guard let text = decodedPart(token, 0),
              let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { return nil }
        return object as? [String: Any]
    }

    /// `json` (an object text ending in "}") with spaces inserted before the closing brace until
    /// its base64url length modulo 4 is `remainder` (2 or 3: a part with a partial last group).
    static func spaced(_ json: String, encodedRemainder remainder: Int) -> String {
        precondition(remainder == 2 || remainder == 3)
        var text = json
        while Base64URL.encodedLength(text.utf8.count) % 4 != remainder {
            text.removeLast()
            text += " }"
        }
        return text
    }

    /// A base64url part whose last character carries non-zero unused bits: it decodes to the
    /// same bytes in a lenient decoder, so a strict one must refuse it. `part` must end in a
    /// partial group (length % 4 of 2 or 3).
    static func nonCanonical(_ part: String) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let unusedBits = part.count % 4 == 2 ? 4 : part.count % 4 == 3 ? 2 : 0
        precondition(unusedBits > 0, "nonCanonical needs a part with a partial last group")
        var chars = Array(part)
        let value = alphabet.firstIndex(of: chars[chars.count - 1])!
        precondition(value & ((1 << unusedBits) - 1) == 0, "the encoder left unused bits set")
        chars[chars.count - 1] = alphabet[value | 1]
        return String(chars)
    }

    /// The standard (RFC 4648 section 4) alphabet encoding of `json`'s bytes, unpadded, after
    /// shifting `json` with leading spaces until that encoding contains `character` ("+" or "/").
    static func standardAlphabetPart(_ json: String, containing character: Character) -> String {
        for shift in 0..<3 {
            let text = String(repeating: " ", count: shift) + json
            let encoded = part(text).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            if encoded.contains(character) { return encoded }
        }
        preconditionFailure("TokenForge: \(json) never encodes with \(character)")
    }

    /// Replaces the character at `offset` of a part text.
    static func replacing(_ text: String, at offset: Int, with character: Character) -> String {
        var chars = Array(text)
        chars[offset] = character
        return String(chars)
    }
}

/// Claims as an ordered list of raw JSON members, so a test can drop one, change its value to
/// any JSON text, or append members (duplicates, escaped names) verbatim.
struct ForgedClaims {
    /// (name, raw JSON value) pairs; the name is written between quotes as given.
    var members: [(name: String, value: String)]
    /// Raw members ("\"name\":value") appended after `members`, exactly as written.
    var extra: [String] = []

    init(now: Int64, sub: String = "alice", jti: String = "8d7f6a2e-4c1b-4e0a-9f3d-2b5c6e7a8f90",
         use: TokenUse = .access, lifetime: Int64 = 600) {
        members = [
            ("iss", #""datarhei-core""#),
            ("sub", "\"\(sub)\""),
            ("iat", "\(now)"),
            ("exp", "\(now + lifetime)"),
            ("exi", "\(lifetime)"),
            ("jti", "\"\(jti)\""),
            ("usefor", "\"\(use.rawValue)\""),
        ]
    }

    /// The same claims with `name` set to the raw JSON `value`, or removed when `value` is nil.
    func with(_ name: String, _ value: String?) -> ForgedClaims {
        var copy = self
        if let i = copy.members.firstIndex(where: { $0.name == name }) {
            if let value { copy.members[i].value = value } else { copy.members.remove(at: i) }
        } else if let value {
            copy.members.append((name, value))
        }
        return copy
    }

    /// The same claims with a raw member appended.
    func adding(_ rawMember: String) -> ForgedClaims {
        var copy = self
        copy.extra.append(rawMember)
        return copy
    }

    var json: String {
        "{" + (members.map { "\"\($0.name)\":\($0.value)" } + extra).joined(separator: ",") + "}"
    }
}
