/// A half-open range of byte offsets into a buffer the caller owns.
struct ByteRange: Equatable {
    var start: Int
    var end: Int
    @inline(__always) var count: Int { end - start }
    @inline(__always) var isEmpty: Bool { start == end }
}

/// Byte classes and small scans shared by the HTTP/1.1 head parser and the chunked decoder
/// (RFC 9110 section 5.6). Everything works on offsets into a buffer; nothing allocates.
enum HTTPBytes {
    // Plain literals, so the constants are folded in and never need a lazy initialiser.
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let semicolon: UInt8 = 0x3B

    /// The RFC 9110 `tchar` set as two 64-bit masks (bytes 0-63, 64-127): one shift and one AND
    /// per byte, no table in memory to initialise.
    private static let tcharLow: UInt64 = 0x03FF_6CFA_0000_0000
    private static let tcharHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    /// `tchar`: `!#$%&'*+-.^_`|~`, digits and letters.
    @inline(__always)
    static func isTchar(_ b: UInt8) -> Bool {
        let mask = b < 64 ? tcharLow : (b < 128 ? tcharHigh : 0)
        return (mask >> UInt64(b & 63)) & 1 != 0
    }

    /// SP or HTAB.
    @inline(__always)
    static func isOWS(_ b: UInt8) -> Bool { b == sp || b == htab }

    /// A byte allowed inside a field value: HTAB, SP, VCHAR, obs-text.
    @inline(__always)
    static func isFieldValueByte(_ b: UInt8) -> Bool { b == htab || (b >= 0x20 && b != 0x7F) }

    /// VCHAR (0x21-0x7E): what a request-target may contain.
    @inline(__always)
    static func isVisible(_ b: UInt8) -> Bool { b &- 0x21 < 0x5E }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

    /// The value of a hex digit, or nil.
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        if b &- 0x30 < 10 { return b &- 0x30 }
        let l = b | 0x20
        if l &- 0x61 < 6 { return l &- 0x61 &+ 10 }
        return nil
    }

    /// ASCII lower case; other bytes unchanged.
    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b &- 0x41 < 26 ? b | 0x20 : b }

    /// True when any of the 8 bytes in `w` is below 0x20 or is 0x7F: the word cannot be skipped
    /// as plain field-value bytes. Exact (no false answer either way) for the "any" question.
    @inline(__always)
    static func hasControlByte(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let below = (w &- ones &* 0x20) & ~w & highs
        let x = w ^ (ones &* 0x7F)
        let del = (x &- ones) & ~x & highs
        return (below | del) != 0
    }

    /// True when any of the 8 bytes in `w` is not VCHAR (0x21-0x7E).
    @inline(__always)
    static func hasNonVisibleByte(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let below = (w &- ones &* 0x21) & ~w & highs
        // Bit 7 ends up set for 0x7F (its low seven bits plus one carry into it) and for every
        // byte that already had it; the carry never leaves the byte.
        let above = (((w & ~highs) &+ ones) | w) & highs
        return (below | above) != 0
    }

    /// Compares the bytes in `range` with `lowercase` ignoring ASCII case. `lowercase` must be
    /// written in lower case.
    @inline(__always)
    static func equalsIgnoringCase(_ buffer: UnsafeRawBufferPointer, _ range: ByteRange, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { s in
            guard s.count == range.count else { return false }
            var i = 0
            while i < s.count {
                if lower(buffer[range.start &+ i]) != s[i] { return false }
                i &+= 1
            }
            return true
        }
    }

    /// Compares the bytes in `range` with `text` exactly (methods are case-sensitive).
    @inline(__always)
    static func equals(_ buffer: UnsafeRawBufferPointer, _ range: ByteRange, _ text: StaticString) -> Bool {
        text.withUTF8Buffer { s in
            guard s.count == range.count else { return false }
            var i = 0
            while i < s.count {
                if buffer[range.start &+ i] != s[i] { return false }
                i &+= 1
            }
            return true
        }
    }

    /// `range` without leading and trailing SP/HTAB.
    @inline(__always)
    static func trimmingOWS(_ buffer: UnsafeRawBufferPointer, _ range: ByteRange) -> ByteRange {
        var s = range.start, e = range.end
        while s < e && isOWS(buffer[s]) { s &+= 1 }
        while e > s && isOWS(buffer[e &- 1]) { e &-= 1 }
        return ByteRange(start: s, end: e)
    }

    /// The largest Content-Length accepted, 2^62: far beyond any body, and sums of it cannot
    /// overflow an Int64.
    static let maxContentLength: Int64 = 4_611_686_018_427_387_904

    /// A Content-Length value (already OWS-trimmed) as RFC 9110 8.6 allows it: `1*DIGIT`, no sign,
    /// no inner spaces, no list, at most `maxContentLength`. Nil when it is anything else.
    @inline(__always)
    static func parseContentLength(_ buffer: UnsafeRawBufferPointer, _ range: ByteRange) -> Int64? {
        guard range.count > 0 else { return nil }
        var value: Int64 = 0
        var i = range.start
        while i < range.end {
            let d = buffer[i] &- 0x30
            guard d < 10 else { return nil }
            // value * 10 + d <= max  <=>  value <= (max - d) / 10
            guard value <= (maxContentLength - Int64(d)) / 10 else { return nil }
            value = value &* 10 &+ Int64(d)
            i &+= 1
        }
        return value
    }

    /// True when the comma-separated list in `range` holds `lowercase` as one of its elements
    /// (ASCII case ignored).
    @inline(__always)
    static func listContains(_ buffer: UnsafeRawBufferPointer, _ range: ByteRange, _ lowercase: StaticString) -> Bool {
        var tokens = TokenList(buffer, range)
        while let t = tokens.next() {
            if equalsIgnoringCase(buffer, t, lowercase) { return true }
        }
        return false
    }
}

/// The non-empty elements of a comma-separated field value (`#element`, RFC 9110 5.6.1), each
/// without surrounding OWS. Empty elements (`a, ,b`) are skipped, as the RFC asks of recipients.
struct TokenList {
    private let buffer: UnsafeRawBufferPointer
    private var position: Int
    private let end: Int

    init(_ buffer: UnsafeRawBufferPointer, _ range: ByteRange) {
        self.buffer = buffer
        self.position = range.start
        self.end = range.end
    }

    mutating func next() -> ByteRange? {
        while position < end {
            let start = position
            while position < end && buffer[position] != HTTPBytes.comma { position &+= 1 }
            let element = HTTPBytes.trimmingOWS(buffer, ByteRange(start: start, end: position))
            if position < end { position &+= 1 }  // past the comma
            if !element.isEmpty { return element }
        }
        return nil
    }
}
