/// Writes one message head into a buffer all or nothing.
///
/// Every append is checked: the first one that does not fit fails the whole head, later ones are
/// ignored, and `finish` then hands back nothing, so a head is never sent with a line missing (a
/// request that lost its `Transfer-Encoding` line would let its body be read as another request).
/// The buffer is a value over pool memory, so the writer works on its own copy of the indices and
/// the caller's buffer changes only when `finish` succeeds.
struct HeadWriter {
    private var out: ByteBuffer
    private let start: Int
    private(set) var overflowed = false

    init(into buffer: ByteBuffer) {
        out = buffer
        start = buffer.writerIndex
    }

    /// Bytes written so far.
    var count: Int { out.writerIndex - start }

    /// The buffer with the head written whole, or nil when any part of it did not fit.
    func finish() -> ByteBuffer? {
        overflowed ? nil : out
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if !overflowed && !out.append(bytes) { overflowed = true }
    }

    @inline(__always)
    mutating func append(_ s: StaticString) {
        if !overflowed && !out.append(s) { overflowed = true }
    }

    @inline(__always)
    mutating func append(byte: UInt8) {
        if !overflowed && !out.append(byte: byte) { overflowed = true }
    }

    mutating func append(decimal value: Int64) {
        if !overflowed && !out.append(decimal: value) { overflowed = true }
    }

    /// One `name: value` line.
    @inline(__always)
    mutating func field(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        append(name)
        append(": ")
        append(value)
        append("\r\n")
    }

    /// One `name: value` line with a fixed name.
    @inline(__always)
    mutating func field(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        append(name)
        append(": ")
        append(value)
        append("\r\n")
    }

    /// Lets `body` write into the buffer directly; it returns false when its bytes did not fit
    /// (and then the head fails).
    mutating func append(with body: (inout ByteBuffer) -> Bool) {
        guard !overflowed else { return }
        if !body(&out) { overflowed = true }
    }
}
