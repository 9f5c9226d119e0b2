/// A route ready for matching: its prefix as bytes and the index of its upstream.
struct CompiledRoute: Sendable {
    let prefix: [UInt8]
    let upstreamIndex: Int
    let authRequired: Bool
    let forwardAuthorization: Bool
    let maxBodyBytes: Int64
    /// The gateway's own errors on this route use the envelope shape.
    let envelopeErrors: Bool
    /// Tunnels and streaming answers end with the token that opened them.
    let closeOnExpiry: Bool
    /// An identity provider's access token opens the route too.
    var acceptIdPTokens = false
}

/// Why a request target is refused before routing (400), never forwarded.
enum TargetError: Error, Equatable {
    /// Not origin-form: `*`, absolute-form, authority-form, or a `#` fragment.
    case notOriginForm
    /// Dot segments, `//`, backslashes or encoded `.`, `/`, `\` in the path.
    case unsafePath
}

/// Matches the raw request path against route prefixes (longest first, case-sensitive) after
/// refusing targets that different servers could read differently. The target itself is
/// forwarded byte for byte: nothing here rewrites it.
enum Router {
    /// Checks the target and returns the length of its path (up to `?`).
    static func checkTarget(_ target: UnsafeRawBufferPointer) throws(TargetError) -> Int {
        guard target.count > 0, target[0] == UInt8(ascii: "/") else { throw .notOriginForm }
        var pathEnd = target.count
        var i = 0
        while i < target.count {
            let b = target[i]
            if b == UInt8(ascii: "#") { throw .notOriginForm }
            if b == UInt8(ascii: "?") && pathEnd == target.count { pathEnd = i }
            i += 1
        }
        try checkPath(UnsafeRawBufferPointer(rebasing: target[0..<pathEnd]))
        return pathEnd
    }

    /// Refuses `//`, `\`, `.` and `..` segments (also with `;parameters`: `..;` reaches the parent
    /// on servers that drop path parameters), percent-encoded `.`, `/`, `\` (any case),
    /// percent-encoded `%` (double encoding), and overlong UTF-8 encodings (`%c0%ae` is `.` to a
    /// lenient decoder): the path the gateway matched must be the path the upstream serves.
    static func checkPath(_ path: UnsafeRawBufferPointer) throws(TargetError) {
        let n = path.count
        var i = 0
        while i < n {
            let b = path[i]
            switch b {
            case UInt8(ascii: "\\"):
                throw .unsafePath
            case UInt8(ascii: "/"):
                if i + 1 < n && path[i + 1] == UInt8(ascii: "/") { throw .unsafePath }
                var k = i + 1
                while k < n && k - i <= 3 && path[k] == UInt8(ascii: ".") { k += 1 }
                let dots = k - i - 1
                if (dots == 1 || dots == 2) && (k == n || path[k] == UInt8(ascii: "/") || path[k] == UInt8(ascii: ";")) {
                    throw .unsafePath
                }
            case UInt8(ascii: "%"):
                guard let byte = encodedByte(path, at: i) else { throw .unsafePath }
                switch byte {
                case UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "%"):
                    throw .unsafePath
                case 0xC0, 0xC1:
                    // Lead bytes that only ever start an overlong (two-byte ASCII) encoding.
                    throw .unsafePath
                case 0xE0, 0xF0:
                    // Overlong three- and four-byte forms: the next byte is below A0 / 90.
                    guard let next = encodedByte(path, at: i + 3), next >= (byte == 0xE0 ? 0xA0 : 0x90) else { throw .unsafePath }
                default:
                    break
                }
                i += 2
            default:
                // Only visible ASCII (the parser already refuses the rest): a raw byte of a
                // multi-byte form would escape the checks above.
                guard b &- 0x21 < 0x5E else { throw .unsafePath }
            }
            i += 1
        }
    }

    /// The byte `%XX` at `i` encodes; nil when there is no `%` and two hex digits there.
    @inline(__always)
    static func encodedByte(_ path: UnsafeRawBufferPointer, at i: Int) -> UInt8? {
        guard i + 2 < path.count, path[i] == UInt8(ascii: "%"),
              let h = HTTPBytes.hexValue(path[i + 1]), let l = HTTPBytes.hexValue(path[i + 2]) else { return nil }
        return h << 4 | l
    }

    /// The first route (routes are sorted longest prefix first) whose prefix starts the path.
    @inline(__always)
    static func match(_ path: UnsafeRawBufferPointer, routes: [CompiledRoute]) -> Int? {
        for (i, r) in routes.enumerated() where r.prefix.count <= path.count {
            let hit = r.prefix.withUnsafeBytes { p in memcmp(p.baseAddress!, path.baseAddress!, p.count) == 0 }
            if hit { return i }
        }
        return nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
