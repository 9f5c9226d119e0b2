/// Reading values out of a parsed `JSONTape`: string content after unescaping, exact integers,
/// member look-up. All of it works on the original bytes plus node offsets, without allocating.
public enum JSONText {
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The unescaped UTF-8 bytes of a string node, one at a time. The node must come from a
    /// successful parse (escapes are known to be well formed).
    public struct DecodedBytes: IteratorProtocol, Sequence {
        let bytes: UnsafeRawBufferPointer
        var pos: Int
        let end: Int
        var pending: (UInt8, UInt8, UInt8) = (0, 0, 0)
        var pendingCount = 0

        public init(_ node: JSONNode, in bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
            self.pos = Int(node.start)
            self.end = Int(node.end)
        }

        public mutating func next() -> UInt8? {
            if pendingCount > 0 {
                let b = pending.0
                pending = (pending.1, pending.2, 0)
                pendingCount -= 1
                return b
            }
            guard pos < end else { return nil }
            let b = bytes[pos]
            guard b == UInt8(ascii: "\\") else { pos += 1; return b }
            let e = bytes[pos + 1]
            pos += 2
            switch e {
            case UInt8(ascii: "b"): return 0x08
            case UInt8(ascii: "f"): return 0x0C
            case UInt8(ascii: "n"): return 0x0A
            case UInt8(ascii: "r"): return 0x0D
            case UInt8(ascii: "t"): return 0x09
            case UInt8(ascii: "u"):
                var scalar = hex4(pos)
                pos += 4
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    let low = hex4(pos + 2)
                    pos += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                return emit(scalar)
            default: return e  // " \ /
            }
        }

        func hex4(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for i in 0..<4 { v = v << 4 | UInt32(JSONText.hexValue(bytes[at + i]) ?? 0) }
            return v
        }

        mutating func emit(_ s: UInt32) -> UInt8 {
            switch s {
            case 0..<0x80:
                return UInt8(s)
            case 0x80..<0x800:
                pending = (UInt8(0x80 | s & 0x3F), 0, 0); pendingCount = 1
                return UInt8(0xC0 | s >> 6)
            case 0x800..<0x10000:
                pending = (UInt8(0x80 | s >> 6 & 0x3F), UInt8(0x80 | s & 0x3F), 0); pendingCount = 2
                return UInt8(0xE0 | s >> 12)
            default:
                pending = (UInt8(0x80 | s >> 12 & 0x3F), UInt8(0x80 | s >> 6 & 0x3F), UInt8(0x80 | s & 0x3F)); pendingCount = 3
                return UInt8(0xF0 | s >> 18)
            }
        }
    }

    /// Whether two string nodes hold the same text after unescaping.
    @inline(__always)
    public static func stringsEqual(_ a: JSONNode, _ b: JSONNode, in bytes: UnsafeRawBufferPointer) -> Bool {
        if !a.flag && !b.flag {
            let n = Int(a.end - a.start)
            guard n == Int(b.end - b.start) else { return false }
            if n <= 8 { return shortWord(a, in: bytes) == shortWord(b, in: bytes) }
            return memcmp(bytes.baseAddress! + Int(a.start), bytes.baseAddress! + Int(b.start), n) == 0
        }
        var x = DecodedBytes(a, in: bytes), y = DecodedBytes(b, in: bytes)
        while true {
            let p = x.next(), q = y.next()
            if p != q { return false }
            if p == nil { return true }
        }
    }

    /// The content of an unescaped string node of at most 8 bytes packed little-endian into a
    /// word (zero-padded), or nil for longer or escaped strings. Claim names fit: comparing
    /// words replaces a call to memcmp per name.
    @inline(__always)
    public static func shortWord(_ node: JSONNode, in bytes: UnsafeRawBufferPointer) -> UInt64? {
        let n = Int(node.end - node.start)
        guard !node.flag, n <= 8 else { return nil }
        let start = Int(node.start)
        if start + 8 <= bytes.count {
            // One unaligned load, then keep the low n bytes (little-endian).
            let w = bytes.loadUnaligned(fromByteOffset: start, as: UInt64.self)
            return n == 8 ? w : w & ((1 << (8 * UInt64(n))) &- 1)
        }
        var w: UInt64 = 0
        let p = bytes.baseAddress! + start
        for i in 0..<n { w |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(i)) }
        return w
    }

    /// `shortWord` of an ASCII literal, for comparison with `shortWord` of a node.
    @inline(__always)
    public static func word(_ literal: StaticString) -> UInt64 {
        var w: UInt64 = 0
        for i in 0..<min(8, literal.utf8CodeUnitCount) { w |= UInt64(literal.utf8Start[i]) << (8 * UInt64(i)) }
        return w
    }

    /// Whether a string node holds exactly `literal` (ASCII) after unescaping.
    public static func string(_ node: JSONNode, in bytes: UnsafeRawBufferPointer, equals literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        if !node.flag {
            guard Int(node.end - node.start) == n else { return false }
            return n == 0 || memcmp(bytes.baseAddress! + Int(node.start), literal.utf8Start, n) == 0
        }
        var it = DecodedBytes(node, in: bytes)
        for i in 0..<n where it.next() != literal.utf8Start[i] { return false }
        return it.next() == nil
    }

    /// Whether a string node holds exactly `other` after unescaping.
    public static func string(_ node: JSONNode, in bytes: UnsafeRawBufferPointer, equals other: UnsafeRawBufferPointer) -> Bool {
        if !node.flag {
            guard Int(node.end - node.start) == other.count else { return false }
            return other.isEmpty || memcmp(bytes.baseAddress! + Int(node.start), other.baseAddress!, other.count) == 0
        }
        var it = DecodedBytes(node, in: bytes)
        for b in other where it.next() != b { return false }
        return it.next() == nil
    }

    /// Writes the unescaped content of a string node into `out`; returns the length, or nil when
    /// it does not fit.
    public static func decode(_ node: JSONNode, in bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        if !node.flag {
            let len = Int(node.end - node.start)
            guard len <= out.count else { return nil }
            if len > 0 { out.baseAddress!.copyMemory(from: bytes.baseAddress! + Int(node.start), byteCount: len) }
            return len
        }
        var n = 0
        var it = DecodedBytes(node, in: bytes)
        while let b = it.next() {
            guard n < out.count else { return nil }
            out[n] = b
            n += 1
        }
        return n
    }

    /// The unescaped content of a string node as a Swift String (set-up code and tools).
    public static func string(_ node: JSONNode, in bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: Array(DecodedBytes(node, in: bytes)), as: UTF8.self)
    }

    /// The exact value of an integer number node, or nil when it has a fraction or exponent or
    /// does not fit in 64 bits. No floating point is involved.
    public static func int64(_ node: JSONNode, in bytes: UnsafeRawBufferPointer) -> Int64? {
        guard node.kind == .number, !node.flag else { return nil }
        var i = Int(node.start)
        let end = Int(node.end)
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var v: Int64 = 0
        while i < end {
            let d = Int64(bytes[i] &- UInt8(ascii: "0"))
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        return v
    }

    /// Index of the value of member `key` in the object at `object`, or nil.
    public static func member(_ key: StaticString, of object: Int, in nodes: JSONTape, bytes: UnsafeRawBufferPointer) -> Int? {
        guard nodes[object].kind == .object else { return nil }
        var i = object + 1
        let end = Int(nodes[object].next)
        while i < end {
            if string(nodes[i], in: bytes, equals: key) { return i + 1 }
            i = Int(nodes[i + 1].next)
        }
        return nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
