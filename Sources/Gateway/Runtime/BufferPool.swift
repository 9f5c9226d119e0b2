import Synchronization

/// Per-loop free lists of buffers in two sizes: a connection takes a small one when it has bytes
/// to hold and gives it back when it goes idle, so an idle keep-alive connection holds no buffer at
/// all. A buffer that must hold a whole head larger than a small buffer (up to
/// `limits.header_bytes`) is enlarged, once, to the large size; so a client that stops reading
/// holds a few small buffers, not large ones. The small free list keeps what the busiest recent
/// second had in use (at least `maxFree`), so buffers go round without the allocator under load
/// (HTTP/2 streams in flight hold several each); `trim`, once a second, gives back what a quieter
/// second no longer needed. Owned by one loop thread.
final class BufferPool {
    let bufferSize: Int
    let largeSize: Int
    private var free: [UnsafeMutableRawPointer] = []
    private var freeLarge: [UnsafeMutableRawPointer] = []
    private let maxFree: Int
    /// The most small buffers the free list keeps now, and the most in use since the last trim.
    private var freeLimit: Int
    private var peakOutstanding = 0
    private(set) var outstanding = 0
    private(set) var outstandingLarge = 0
    /// `bytesInUse` and `bytesPooled`, published for the admin socket's `status` (read from
    /// another thread; a relaxed store on each change costs the loop nothing measurable).
    private let published = Atomic<Int>(0), publishedPooled = Atomic<Int>(0)

    init(bufferSize: Int, largeSize: Int, maxFree: Int = 256) {
        precondition(largeSize >= bufferSize)
        self.bufferSize = bufferSize
        self.largeSize = largeSize
        self.maxFree = maxFree
        freeLimit = maxFree
    }

    deinit {
        for p in free { p.deallocate() }
        for p in freeLarge { p.deallocate() }
    }

    @inline(__always)
    func take() -> ByteBuffer {
        outstanding += 1
        if outstanding > peakOutstanding { peakOutstanding = outstanding }
        let base = free.popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        publish()
        return ByteBuffer(base: base, capacity: bufferSize)
    }

    /// Moves `buffer`'s unread bytes into a large buffer; false (nothing changed) when it is
    /// large already.
    func enlarge(_ buffer: inout ByteBuffer) -> Bool {
        guard buffer.capacity < largeSize else { return false }
        outstandingLarge += 1
        let base = freeLarge.popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: largeSize, alignment: 16)
        var large = ByteBuffer(base: base, capacity: largeSize)
        large.appendWithinRoom(buffer.readable)
        release(buffer)
        buffer = large
        return true
    }

    /// Bytes held by buffers in use.
    var bytesInUse: Int { outstanding * bufferSize + outstandingLarge * largeSize }
    /// Bytes held on the free lists.
    var bytesPooled: Int { free.count * bufferSize + freeLarge.count * largeSize }

    /// `bytesInUse` and `bytesPooled` as last published, safe to read from any thread.
    var publishedBytes: (inUse: Int, pooled: Int) {
        (published.load(ordering: .relaxed), publishedPooled.load(ordering: .relaxed))
    }

    @inline(__always)
    private func publish() {
        published.store(bytesInUse, ordering: .relaxed)
        publishedPooled.store(bytesPooled, ordering: .relaxed)
    }

    @inline(__always)
    func release(_ buffer: ByteBuffer) {
        if buffer.capacity == largeSize && largeSize != bufferSize {
            outstandingLarge -= 1
            if freeLarge.count < maxFree / 8 { freeLarge.append(buffer.base) } else { buffer.base.deallocate() }
        } else {
            outstanding -= 1
            if free.count < freeLimit { free.append(buffer.base) } else { buffer.base.deallocate() }
        }
        publish()
    }

    /// Once a second: the free list keeps at most what the last second had in use at its
    /// busiest (at least `maxFree`); the rest goes back to the allocator.
    func trim() {
        freeLimit = max(maxFree, peakOutstanding)
        peakOutstanding = outstanding
        while free.count > freeLimit { free.removeLast().deallocate() }
        publish()
    }
}
