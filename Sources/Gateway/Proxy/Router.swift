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

    /// Refuses `//`, `\`, `.` and `..` segments and percent-encoded `.`, `/`, `\` (any case), and
    /// percent-encoded `%` (double encoding): the path the gateway matched must be the path the
    /// upstream serves.
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
                // A segment of "." or ".." (ends at "/" or the end of the path).
                if i + 1 < n && path[i + 1] == UInt8(ascii: ".") {
                    let afterDot = i + 2
                    if afterDot == n || path[afterDot] == UInt8(ascii: "/") { throw .unsafePath }
                    if path[afterDot] == UInt8(ascii: ".") && (afterDot + 1 == n || path[afterDot + 1] == UInt8(ascii: "/")) {
                        throw .unsafePath
                    }
                }
            case UInt8(ascii: "%"):
                guard i + 2 < n else { throw .unsafePath }
                let h = path[i + 1] | 0x20, l = path[i + 2] | 0x20
                // %2e (.), %2f (/), %5c (\), %25 (%): refused in any case.
                if (h == UInt8(ascii: "2") && (l == UInt8(ascii: "e") || l == UInt8(ascii: "f") || l == UInt8(ascii: "5")))
                    || (h == UInt8(ascii: "5") && l == UInt8(ascii: "c")) {
                    throw .unsafePath
                }
                guard isHex(path[i + 1]), isHex(path[i + 2]) else { throw .unsafePath }
                i += 2
            default:
                break
            }
            i += 1
        }
    }

    @inline(__always)
    static func isHex(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "f"))
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
