/// A fixed-capacity byte buffer with a read and a write index, memory from a `BufferPool`.
///
/// Not copy-on-write and not reference counted: it is a view of pool memory owned by exactly one
/// connection at a time, returned with `BufferPool.release` when the connection goes idle. Its
/// owner mutates it in place (`input!.consume(n)`, `&output!`), never through a copy that would
/// have to be written back: a copy's indexes are lost when the write-back is forgotten.
struct ByteBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var readerIndex = 0
    var writerIndex = 0

    init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    @inline(__always) var readableBytes: Int { writerIndex - readerIndex }
    @inline(__always) var writableBytes: Int { capacity - writerIndex }
    @inline(__always) var isEmpty: Bool { readerIndex == writerIndex }

    /// The unread bytes.
    @inline(__always)
    var readable: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + readerIndex, count: readableBytes) }

    @inline(__always)
    var writable: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base + writerIndex, count: writableBytes) }

    @inline(__always)
    mutating func consume(_ n: Int) {
        readerIndex += n
        if readerIndex == writerIndex { readerIndex = 0; writerIndex = 0 }
    }

    /// Forgets every byte (a lingering close drops its input).
    @inline(__always)
    mutating func clear() {
        readerIndex = 0
        writerIndex = 0
    }

    /// Moves unread bytes to the front so the whole tail is writable.
    mutating func compact() {
        guard readerIndex > 0 else { return }
        let n = readableBytes
        if n > 0 { base.copyMemory(from: base + readerIndex, byteCount: n) }
        readerIndex = 0
        writerIndex = n
    }

    /// Appends bytes the caller has made room for (checked: a miscount traps, it never drops
    /// bytes silently).
    @inline(__always)
    mutating func appendWithinRoom(_ bytes: UnsafeRawBufferPointer) {
        precondition(append(bytes), "appendWithinRoom without room")
    }

    @inline(__always)
    mutating func appendWithinRoom(_ s: StaticString) {
        precondition(append(s), "appendWithinRoom without room")
    }

    /// Moves up to `limit` unread bytes of `source` here, as many as fit; returns how many.
    @inline(__always)
    mutating func move(from source: inout ByteBuffer, limit: Int64 = .max) -> Int {
        let n = Int(min(limit, Int64(min(source.readableBytes, writableBytes))))
        guard n > 0 else { return 0 }
        (base + writerIndex).copyMemory(from: source.base + source.readerIndex, byteCount: n)
        writerIndex += n
        source.consume(n)
        return n
    }

    /// Appends bytes; false (and nothing written) when they do not fit. Every caller checks the
    /// answer (or uses `HeadWriter`, which does): bytes are never dropped silently.
    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= writableBytes else { return false }
        if !bytes.isEmpty { (base + writerIndex).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        writerIndex += bytes.count
        return true
    }

    @inline(__always)
    mutating func append(_ s: StaticString) -> Bool {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always)
    mutating func append(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { append($0) }
    }

    @inline(__always)
    mutating func append(byte: UInt8) -> Bool {
        guard writerIndex < capacity else { return false }
        base.storeBytes(of: byte, toByteOffset: writerIndex, as: UInt8.self)
        writerIndex += 1
        return true
    }

    /// Appends a decimal number.
    mutating func append(decimal value: Int64) -> Bool {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes of scratch
        return withUnsafeMutableBytes(of: &digits) { scratch -> Bool in
            var v = value.magnitude
            var i = scratch.count
            repeat {
                i -= 1
                scratch[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0
            if value < 0 { i -= 1; scratch[i] = UInt8(ascii: "-") }
            return append(UnsafeRawBufferPointer(rebasing: scratch[i...]))
        }
    }

    /// Appends a lower-case hexadecimal number (chunk sizes).
    mutating func append(hex value: Int) -> Bool {
        let digits: StaticString = "0123456789abcdef"
        var v = UInt(value), shift = 0
        while v >> (shift + 4) != 0 { shift += 4 }
        guard shift / 4 + 1 <= writableBytes else { return false }
        while shift >= 0 {
            _ = append(byte: digits.utf8Start[Int(v >> UInt(shift) & 15)])
            shift -= 4
        }
        return true
    }
}
