/// Strict base64url (RFC 4648 section 5) without padding, as JWS compact serialisation uses it.
///
/// Decoding refuses padding, characters outside the URL-safe alphabet, a length that leaves one
/// dangling character, and non-canonical trailing bits (so every byte string has exactly one
/// accepted encoding and a token cannot be altered without changing its signature input).
/// Both directions write into caller-provided buffers; the `[UInt8]` helpers are for set-up code.
public enum Base64URL {
    @usableFromInline
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0...63 for alphabet characters, 0xFF for everything else.
    @usableFromInline
    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, char) in alphabet.enumerated() { table[Int(char)] = UInt8(value) }
        return table
    }()

    /// Length of the unpadded encoding of `count` bytes.
    @inlinable
    public static func encodedLength(_ count: Int) -> Int { (count * 4 + 2) / 3 }

    /// Length of the decoding of `count` characters, or nil when no valid encoding has that length.
    @inlinable
    public static func decodedLength(_ count: Int) -> Int? {
        count % 4 == 1 ? nil : count / 4 * 3 + max(0, count % 4 - 1)
    }

    /// Encodes `input` into `output` (at least `encodedLength(input.count)` bytes); returns the length.
    public static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        precondition(output.count >= encodedLength(input.count), "base64url output buffer too small")
        return alphabet.withUnsafeBufferPointer { abc in
            var i = 0, o = 0
            let n = input.count
            while i + 3 <= n {
                let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                output[o] = abc[Int(v >> 18 & 63)]
                output[o + 1] = abc[Int(v >> 12 & 63)]
                output[o + 2] = abc[Int(v >> 6 & 63)]
                output[o + 3] = abc[Int(v & 63)]
                i += 3; o += 4
            }
            if n - i == 1 {
                let v = UInt32(input[i]) << 16
                output[o] = abc[Int(v >> 18 & 63)]
                output[o + 1] = abc[Int(v >> 12 & 63)]
                o += 2
            } else if n - i == 2 {
                let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                output[o] = abc[Int(v >> 18 & 63)]
                output[o + 1] = abc[Int(v >> 12 & 63)]
                output[o + 2] = abc[Int(v >> 6 & 63)]
                o += 3
            }
            return o
        }
    }

    /// Decodes `input` into `output`; returns the decoded length, or nil when `input` is not
    /// strict unpadded base64url or `output` is too small.
    public static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard let length = decodedLength(input.count), output.count >= length else { return nil }
        return decodeTable.withUnsafeBufferPointer { table -> Int? in
            var i = 0, o = 0
            let n = input.count
            var bad: UInt8 = 0
            while i + 4 <= n {
                let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                let c = table[Int(input[i + 2])], d = table[Int(input[i + 3])]
                bad |= a | b | c | d
                let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                output[o] = UInt8(truncatingIfNeeded: v >> 16)
                output[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                output[o + 2] = UInt8(truncatingIfNeeded: v)
                i += 4; o += 3
            }
            // 0xFF has the top bits set, which no 6-bit value has: one test covers the whole run.
            if bad & 0xC0 != 0 { return nil }
            switch n - i {
            case 0:
                return o
            case 2:
                let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                if (a | b) & 0xC0 != 0 || b & 0x0F != 0 { return nil }
                output[o] = a << 2 | b >> 4
                return o + 1
            case 3:
                let a = table[Int(input[i])], b = table[Int(input[i + 1])], c = table[Int(input[i + 2])]
                if (a | b | c) & 0xC0 != 0 || c & 0x03 != 0 { return nil }
                output[o] = a << 2 | b >> 4
                output[o + 1] = (b & 0x0F) << 4 | c >> 2
                return o + 2
            default:
                return nil
            }
        }
    }

    /// Encodes bytes to a base64url string (set-up code and tools, not the request path).
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let input = Array(bytes)
        var out = [UInt8](repeating: 0, count: encodedLength(input.count))
        let n = input.withUnsafeBytes { i in out.withUnsafeMutableBytes { encode(i, into: $0) } }
        return String(decoding: out[..<n], as: UTF8.self)
    }

    /// Decodes a base64url string, or nil when it is not strict unpadded base64url.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard let length = decodedLength(input.count) else { return nil }
        var out = [UInt8](repeating: 0, count: length)
        let n = input.withUnsafeBytes { i in out.withUnsafeMutableBytes { decode(i, into: $0) } }
        guard let n else { return nil }
        return Array(out[..<n])
    }
}
