import XCTest
@testable import Gateway

/// The loop's buffer free lists: buffers go round without the allocator under load, and what a
/// quieter second no longer needs goes back.
final class BufferPoolTests: XCTestCase {
    private func cycle(_ pool: BufferPool, _ n: Int) {
        let taken = (0..<n).map { _ in pool.take() }
        for b in taken { pool.release(b) }
    }

    func testTheFreeListKeepsWhatTheBusiestRecentSecondUsedThenGivesItBack() {
        let pool = BufferPool(bufferSize: 1024, largeSize: 4096, maxFree: 8)
        cycle(pool, 20)
        XCTAssertEqual(pool.bytesPooled, 8 * 1024, "at first, at most maxFree are kept")
        pool.trim()
        cycle(pool, 20)
        XCTAssertEqual(pool.bytesPooled, 20 * 1024, "after a second that had 20 in use, 20 go round")
        XCTAssertEqual(pool.bytesInUse, 0)
        pool.trim()  // the second that used 20
        XCTAssertEqual(pool.bytesPooled, 20 * 1024)
        pool.trim()  // a quiet second
        XCTAssertEqual(pool.bytesPooled, 8 * 1024, "given back down to maxFree")
    }

    func testBuffersInUseAcrossATrimCountTowardsTheNextLimit() {
        let pool = BufferPool(bufferSize: 1024, largeSize: 4096, maxFree: 2)
        let held = (0..<10).map { _ in pool.take() }
        pool.trim()
        for b in held { pool.release(b) }
        XCTAssertEqual(pool.bytesPooled, 10 * 1024)
        pool.trim()
        XCTAssertEqual(pool.bytesPooled, 10 * 1024, "they were in use during the last second")
        pool.trim()
        XCTAssertEqual(pool.bytesPooled, 2 * 1024)
    }
}
