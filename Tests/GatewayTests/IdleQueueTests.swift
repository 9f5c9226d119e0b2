import XCTest
@testable import Gateway

/// The queue of connections waiting for a request, oldest first, without a socket.
final class IdleQueueTests: XCTestCase {
    private func entry(_ slot: Int32, turn: UInt64) -> IdleQueue.Entry { .init(slot: slot, generation: 1, turn: turn) }

    func testEntriesComeOutInTheOrderConnectionsBeganToWait() {
        var q = IdleQueue()
        for i in 0..<200 { q.append(entry(Int32(i), turn: UInt64(i))) }
        for i in 0..<150 { XCTAssertEqual(q.popFirst()?.slot, Int32(i)) }
        q.append(entry(900, turn: 900))
        XCTAssertEqual(q.count, 51)
        for i in 150..<200 { XCTAssertEqual(q.popFirst()?.slot, Int32(i), "order kept across the storage's trims") }
        XCTAssertEqual(q.popFirst()?.slot, 900)
        XCTAssertNil(q.popFirst())
    }

    func testCompactingDropsStaleEntriesOnlyOverTheLimit() {
        var q = IdleQueue()
        // One connection answered a hundred times: only its newest entry is current.
        for t in 0..<100 { q.append(entry(7, turn: UInt64(t))) }
        q.append(entry(8, turn: 5))
        q.compact(over: 200) { $0.turn == 99 || $0.slot == 8 }
        XCTAssertEqual(q.count, 101, "under the limit nothing is walked")
        q.compact(over: 10) { $0.turn == 99 || $0.slot == 8 }
        XCTAssertEqual(q.count, 2)
        XCTAssertEqual(q.popFirst(), entry(7, turn: 99))
        XCTAssertEqual(q.popFirst(), entry(8, turn: 5))
    }
}
